/// CORS (Fetch standard §3.2): exact origins from config, `*` only when
/// written explicitly. An allowed origin is echoed with `Vary: Origin`; a
/// disallowed one gets no CORS headers (and a 403 on preflight).
public enum CORS {
    public static let allowedHeaders = "Content-Type, Authorization, x-api-key, X-Request-Id"
    /// What a browser client may read: limits, Retry-After, the request id.
    public static let exposedHeaders = "RateLimit, RateLimit-Policy, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-Id, Server-Timing"

    public enum Verdict: Equatable {
        /// No Origin header: not a CORS request.
        case notCORS
        case allowed(headers: [(String, String)])
        case denied

        public static func == (a: Verdict, b: Verdict) -> Bool {
            switch (a, b) {
            case (.notCORS, .notCORS), (.denied, .denied): return true
            case let (.allowed(x), .allowed(y)): return x.elementsEqual(y) { $0 == $1 }
            default: return false
            }
        }
    }

    public static func verdict(origin: String?, allowed: [String]) -> Verdict {
        guard let origin, !origin.isEmpty else { return .notCORS }
        // Never reflect anything that is not a clean origin.
        guard HeaderSafety.isSafe(origin), origin.utf8.count <= 256 else { return .denied }
        if allowed.contains("*") {
            return .allowed(headers: [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", exposedHeaders)])
        }
        guard let parts = URLParts(origin), parts.pathAndQuery.isEmpty else { return .denied }
        let normalised = parts.origin
        let ok = allowed.contains { URLParts($0)?.origin == normalised }
        guard ok else { return .denied }
        return .allowed(headers: [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                                  ("Access-Control-Expose-Headers", exposedHeaders)])
    }

    /// Header families the official OpenAI SDKs send from a browser
    /// (`X-Stainless-Lang`, `X-Stainless-Retry-Count`, `OpenAI-Organization`,
    /// …): allowed when a preflight asks for them, since new members appear
    /// with SDK releases.
    public static let allowedHeaderPrefixes = ["x-stainless-", "openai-"]

    /// `methods` from `Router.allow(path:)`, OPTIONS included; `requested`
    /// is the preflight's `Access-Control-Request-Headers`.
    public static func preflightHeaders(methods: [String], maxAge: Int, requested: String? = nil) -> [(String, String)] {
        var headers = allowedHeaders
        for name in (requested ?? "").split(separator: ",") {
            let n = String(name).trimmingSpaces().lowercased()
            guard n.utf8.count <= 64, !n.isEmpty, n.utf8.allSatisfy(isTokenByte),
                  allowedHeaderPrefixes.contains(where: { n.hasPrefix($0) }) else { continue }
            headers += ", " + n
        }
        return [("Access-Control-Allow-Methods", methods.joined(separator: ", ")),
                ("Access-Control-Allow-Headers", headers),
                ("Access-Control-Max-Age", String(maxAge))]
    }

    /// RFC 9110 §5.6.2 token characters, lowercase (names were lowercased).
    static func isTokenByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F || b == 0x2E
    }
}
