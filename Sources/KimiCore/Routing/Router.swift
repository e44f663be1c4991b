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
    /// Operators' tools (`/metrics`): a caller in `metrics.allowFrom` or
    /// with an admin key; anyone else gets 404, as if nothing were there.
    case monitor
}

/// Method + normalised path → route. Paths are exact, or patterns whose
/// `{name}` segments match one segment of ids (`[A-Za-z0-9._-]`, at most 128
/// bytes): the surface is small and fixed, and nothing is left to traversal
/// tricks (the path was normalised once, in `Request.init`, by `RoutePath`).
public struct Router<Handler> {
    public struct Route {
        public let method: String
        public let path: String
        public let access: Access
        /// Answered by the reserve thread of a saturated process (see
        /// `WorkerPool`): monitors must see a live process.
        public let servesWhenSaturated: Bool
        public let body: BodyPolicy
        /// The dialect the route speaks (errors, stream events); nil: the
        /// request's, by its path (`Request.face`).
        public let face: APIFace?
        public let handler: Handler
    }

    public enum Match {
        /// The route and the values of its `{name}` segments.
        case found(Route, parameters: [String: String])
        case notFound
        case methodNotAllowed(allow: [String])
    }

    @usableFromInline var table: [String: [Route]] = [:]
    /// Routes with `{name}` segments, by pattern; tried after the exact table.
    @usableFromInline var patterns: [(segments: [Substring], routes: [Route])] = []
    /// Registration order, for `/api/info`.
    public private(set) var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ path: String, access: Access, servesWhenSaturated: Bool = false,
                             body: BodyPolicy = .buffered, face: APIFace? = nil, _ handler: Handler)
    {
        precondition(RoutePath.normalise(path) == path, "route \(path) is not in normal form")
        let route = Route(method: method, path: path, access: access, servesWhenSaturated: servesWhenSaturated, body: body, face: face, handler: handler)
        if path.contains("{") {
            let segments = path.split(separator: "/")
            if let i = patterns.firstIndex(where: { $0.segments == segments }) {
                patterns[i].routes.append(route)
            } else {
                patterns.append((segments, [route]))
            }
        } else {
            table[path, default: []].append(route)
        }
        routes.append(route)
    }

    /// `path` is a `Request.path`: already normalised. Inlinable, as are the
    /// other look-ups, so the gateway's module specializes them for its
    /// handler type: unspecialized, a match cost ~4,700 instructions in
    /// metadata look-ups and generic `first(where:)` (callgrind, bench 2d).
    @inlinable
    public func match(method: String, path: String) -> Match {
        guard let (candidates, parameters) = lookup(path) else { return .notFound }
        if let r = candidates.first(where: { $0.method == method }) { return .found(r, parameters: parameters) }
        if method == "HEAD", let r = candidates.first(where: { $0.method == "GET" }) { return .found(r, parameters: parameters) }
        return .methodNotAllowed(allow: allow(path: path))
    }

    @inlinable
    func lookup(_ path: String) -> ([Route], [String: String])? {
        if let exact = table[path] { return (exact, [:]) }
        guard !patterns.isEmpty else { return nil }
        let segments = path.split(separator: "/")
        outer: for p in patterns where p.segments.count == segments.count {
            var parameters: [String: String] = [:]
            for (want, got) in zip(p.segments, segments) {
                if want.first == "{", want.last == "}" {
                    guard Self.isID(got) else { continue outer }
                    parameters[String(want.dropFirst().dropLast())] = String(got)
                } else if want != got {
                    continue outer
                }
            }
            return (p.routes, parameters)
        }
        return nil
    }

    @inlinable
    public static func isID(_ s: Substring) -> Bool {
        s.utf8.count <= 128 && s.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
        } && s != "." && s != ".."
    }

    /// The methods a path answers, for `Allow` (405 and OPTIONS) and
    /// `Access-Control-Allow-Methods` (preflights): HEAD wherever GET is,
    /// OPTIONS everywhere. Empty for an unknown path.
    @inlinable
    public func allow(path: String) -> [String] {
        guard let (candidates, _) = lookup(path) else { return [] }
        var methods = candidates.map(\.method)
        if methods.contains("GET") { methods.append("HEAD") }
        methods.append("OPTIONS")
        return methods
    }

    /// How the request's route takes its body (`.buffered` when there is no route).
    @inlinable
    public func bodyPolicy(method: String, path: String) -> BodyPolicy {
        if case let .found(route, _) = match(method: method, path: path) { return route.body }
        return .buffered
    }

    /// The route a request would reach whatever its method: the policy of a
    /// path (for a preflight or the reserve thread) is that of its routes.
    @inlinable
    public func anyRoute(path: String) -> Route? { lookup(path)?.0.first }
}
