/// CORS (Fetch standard §3.2): exact origins from config, `*` only when
/// written explicitly. An allowed origin is echoed with `Vary: Origin`; a
/// disallowed one gets no CORS headers (and a 403 on preflight).
public enum CORS {
    public static let allowedHeaders = "Content-Type, Authorization, x-api-key, X-Request-Id"
    /// What a browser client may read: limits, Retry-After, the request id.
    public static let exposedHeaders = "RateLimit, RateLimit-Policy, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Request-Id"

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

    /// `methods` from `Router.allow(path:)`, OPTIONS included.
    public static func preflightHeaders(methods: [String], maxAge: Int) -> [(String, String)] {
        [("Access-Control-Allow-Methods", methods.joined(separator: ", ")),
         ("Access-Control-Allow-Headers", allowedHeaders),
         ("Access-Control-Max-Age", String(maxAge))]
    }
}
