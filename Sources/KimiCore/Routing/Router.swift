/// Who may call a route, declared with the route (`Router.add`) and asked by
/// the middleware; nothing compares path strings to decide access.
public enum Access: String, Sendable {
    /// No key, no limit: `/health`, for load balancers and monitors.
    case open
    /// A client key when `auth.required` (any valid key identifies the
    /// client either way); rate-limited.
    case client
    /// A key whose role is `admin`, whether or not `auth.required`;
    /// rate-limited. With no admin key configured the route answers 403.
    case admin
}

/// Method + normalised path → route. Exact paths only: the gateway's surface
/// is small and fixed, and exact matching leaves nothing to traversal tricks
/// (the path was normalised once, in `Request.init`, by `RoutePath`).
public struct Router<Handler> {
    public struct Route {
        public let method: String
        public let path: String
        public let access: Access
        /// Answered by the reserve thread of a saturated process (see
        /// `WorkerPool`): monitors must see a live process.
        public let servesWhenSaturated: Bool
        public let handler: Handler
    }

    public enum Match {
        case found(Route)
        case notFound
        case methodNotAllowed(allow: [String])
    }

    private var table: [String: [Route]] = [:]
    /// Registration order, for `/api/info`.
    public private(set) var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ path: String, access: Access, servesWhenSaturated: Bool = false,
                             _ handler: Handler)
    {
        precondition(RoutePath.normalise(path) == path, "route \(path) is not in normal form")
        let route = Route(method: method, path: path, access: access, servesWhenSaturated: servesWhenSaturated, handler: handler)
        table[path, default: []].append(route)
        routes.append(route)
    }

    /// `path` is a `Request.path`: already normalised.
    public func match(method: String, path: String) -> Match {
        guard let candidates = table[path] else { return .notFound }
        if let r = candidates.first(where: { $0.method == method }) { return .found(r) }
        if method == "HEAD", let r = candidates.first(where: { $0.method == "GET" }) { return .found(r) }
        return .methodNotAllowed(allow: allow(path: path))
    }

    /// The methods a path answers, for `Allow` (405 and OPTIONS) and
    /// `Access-Control-Allow-Methods` (preflights): HEAD wherever GET is,
    /// OPTIONS everywhere. Empty for an unknown path.
    public func allow(path: String) -> [String] {
        guard let candidates = table[path] else { return [] }
        var methods = candidates.map(\.method)
        if methods.contains("GET") { methods.append("HEAD") }
        methods.append("OPTIONS")
        return methods
    }

    /// The route a request would reach whatever its method: the policy of a
    /// path (for a preflight or the reserve thread) is that of its routes.
    public func anyRoute(path: String) -> Route? { table[path]?.first }
}
