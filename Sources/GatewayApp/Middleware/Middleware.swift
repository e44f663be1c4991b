import KimiCore

/// The middleware chain, in order. Each step either lets the request through
/// (adding response headers to the context) or throws a `GatewayError`.
/// Security headers were added before the chain (`Gateway.handle`), so every
/// response, errors and 429s included, carries them. What a request must
/// show is the matched route's `access`, declared where the route is added
/// (`Gateway+Routes.swift`).
enum Middleware {
    static func run(_ ctx: RequestContext, gateway: Gateway) throws {
        let req = ctx.request
        if try corsAndPreflight(ctx, gateway: gateway) { return }
        switch ctx.routeMatch ?? gateway.router.match(method: req.method, path: req.path) {
        case .notFound:
            throw GatewayError.notFound(req.path)
        case let .methodNotAllowed(allow):
            throw GatewayError.methodNotAllowed(req.method, allow: allow)
        case let .found(route, parameters):
            ctx.pathParameters = parameters
            ctx.routePattern = route.path
            switch route.access {
            case .open:
                break
            case .client:
                try authenticate(ctx, keys: gateway.services.keys)
                try rateLimit(ctx, limiter: gateway.services.limiter)
                try gateway.services.acquireConcurrency(ctx)
            case .admin:
                try authenticateAdmin(ctx, keys: gateway.services.keys)
                try rateLimit(ctx, limiter: gateway.services.limiter)
                try gateway.services.acquireConcurrency(ctx)
            case .monitor:
                if !ctx.config.metrics.allowFromRanges.contains(where: { $0.contains(req.remoteAddr) }) {
                    // An admin key, from the config or created at run time.
                    guard case let .valid(key) = lookUpKey(ctx, keys: gateway.services.keys), key.role == .admin else {
                        throw GatewayError.notFound(req.path)
                    }
                    ctx.apiKey = key
                }
            }
            try route.handler(ctx)
        }
    }
}
