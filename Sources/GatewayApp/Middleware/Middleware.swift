import KimiCore

/// The middleware chain, in order. Each step either lets the request through
/// (adding response headers to the context) or throws a `GatewayError`.
/// Security headers were added before the chain (`Gateway.handle`), so every
/// response, errors and 429s included, carries them.
enum Middleware {
    /// Routes answered even by the reserve thread of a saturated process:
    /// monitors must see a live process.
    static func servesWhenSaturated(_ path: String) -> Bool { path == "/health" || path == "/health/" }

    static func run(_ ctx: RequestContext, gateway: Gateway) throws {
        let req = ctx.request
        if try corsAndPreflight(ctx, gateway: gateway) { return }
        switch gateway.router.match(method: req.method, path: req.path) {
        case .notFound:
            throw GatewayError.notFound(req.path)
        case let .methodNotAllowed(allow):
            throw GatewayError.methodNotAllowed(req.method, allow: allow)
        case let .found(handler):
            // /health is for load balancers and monitors: no key, no limit.
            if req.path != "/health" {
                try authenticate(ctx)
                try rateLimit(ctx, limiter: gateway.services.limiter)
            }
            try handler(ctx)
        }
    }
}
