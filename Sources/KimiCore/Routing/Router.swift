/// Method + path → handler. Exact paths only: the gateway's surface is small
/// and fixed, and exact matching leaves nothing to traversal tricks.
public struct Router<Handler> {
    public enum Match {
        case found(Handler)
        case notFound
        case methodNotAllowed(allow: [String])
    }

    private var table: [String: [(method: String, handler: Handler)]] = [:]
    /// Registration order, for `/api/info`.
    public private(set) var endpoints: [(method: String, path: String)] = []

    public init() {}

    public mutating func add(_ method: String, _ path: String, _ handler: Handler) {
        table[path, default: []].append((method, handler))
        endpoints.append((method, path))
    }

    public func match(method: String, path: String) -> Match {
        var p = path
        // One trailing slash is tolerated (`/health/`), nothing else is rewritten.
        if p.count > 1, p.hasSuffix("/") { p.removeLast() }
        guard let routes = table[p] else { return .notFound }
        if let r = routes.first(where: { $0.method == method }) { return .found(r.handler) }
        if method == "HEAD", let r = routes.first(where: { $0.method == "GET" }) { return .found(r.handler) }
        var allow = routes.map(\.method)
        if allow.contains("GET") { allow.append("HEAD") }
        allow.append("OPTIONS")
        return .methodNotAllowed(allow: allow)
    }

    public func allowedMethods(path: String) -> [String] {
        var p = path
        if p.count > 1, p.hasSuffix("/") { p.removeLast() }
        return table[p]?.map(\.method) ?? []
    }
}
