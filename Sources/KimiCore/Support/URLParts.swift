/// The parts of an absolute http(s) URL the gateway needs: enough to enforce
/// "https, or http on loopback" and to compare origins.
public struct URLParts: Equatable, Sendable {
    public var scheme: String
    public var host: String
    public var port: Int?
    public var pathAndQuery: String

    public init?(_ s: String) {
        guard HeaderSafety.isSafe(s), !s.contains(" ") else { return nil }
        guard let r = s.firstRange(of: "://") else { return nil }
        scheme = s[..<r.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = s[r.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = String(rest[..<authorityEnd])
        pathAndQuery = String(rest[authorityEnd...])
        guard !authority.contains("@") else { return nil } // no credentials in URLs
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close]).lowercased()
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }; port = p }
            else if !after.isEmpty { return nil }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
                port = p
                authority = String(authority[..<colon])
            }
            host = authority.lowercased()
        }
        guard !host.isEmpty else { return nil }
    }

    public var isLoopback: Bool { host == "localhost" || host.hasPrefix("127.") || host == "::1" }

    /// `scheme://host[:port]` with the default port elided (RFC 6454 serialisation).
    public var origin: String {
        let defaultPort = scheme == "https" ? 443 : 80
        let h = host.contains(":") ? "[\(host)]" : host
        if let port, port != defaultPort { return "\(scheme)://\(h):\(port)" }
        return "\(scheme)://\(h)"
    }
}
