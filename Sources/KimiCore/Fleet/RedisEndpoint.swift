/// Where the fleet's Redis is: `redis://[:password@]host[:port][/db]`
/// (`redis.url`, env `REDIS_URL`). The password normally comes from
/// `REDIS_PASSWORD` instead, and is never printed: `description` shows the
/// address only.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var db: Int
    public var password: String

    public init(host: String, port: Int = 6379, db: Int = 0, password: String = "") {
        (self.host, self.port, self.db, self.password) = (host, port, db, password)
    }

    /// Nil for anything but a well-formed `redis://` URL.
    public init?(url: String) {
        guard url.hasPrefix("redis://") else { return nil }
        var rest = Substring(url.dropFirst(8))
        var password = ""
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            // `user:password` or `:password` (Redis 6 ACL users are not used: AUTH <password> only).
            password = userinfo.firstIndex(of: ":").map { String(userinfo[userinfo.index(after: $0)...]) } ?? String(userinfo)
            rest = rest[rest.index(after: at)...]
        }
        var db = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty {
                guard let d = Int(path), (0...15).contains(d) else { return nil }
                db = d
            }
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 6379
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(p) else { return nil }
            port = p
            host = String(rest[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else { return nil }
        self.init(host: host, port: port, db: db, password: password)
    }

    /// A URL as it may be printed: any userinfo (a password) replaced.
    public static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let scheme = url.hasPrefix("redis://") ? "redis://" : ""
        return scheme + "***" + url[at...]
    }

    public var description: String { "redis://\(host.contains(":") ? "[\(host)]" : host):\(port)/\(db)" }
}
