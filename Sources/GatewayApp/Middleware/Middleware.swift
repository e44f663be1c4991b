import KimiCore

/// The middleware chain, in order. Each step either lets the request through
/// (adding response headers to the context) or throws a `GatewayError`.
enum Middleware {
    static func run(_ ctx: RequestContext, gateway: Gateway) throws {
        let req = ctx.request
        switch gateway.router.match(method: req.method, path: req.path) {
        case .notFound:
            throw GatewayError.notFound(req.path)
        case let .methodNotAllowed(allow):
            throw GatewayError.methodNotAllowed(req.method, allow: allow)
        case let .found(handler):
            try handler(ctx)
        }
    }
}
