import KimiCore

extension Middleware {
    /// Adds CORS headers for an allowed origin; answers a preflight itself.
    /// Returns true when the request was answered here.
    static func corsAndPreflight(_ ctx: RequestContext, gateway: Gateway) throws -> Bool {
        let req = ctx.request
        let cors = ctx.config.cors
        let verdict = CORS.verdict(origin: req.header("origin"), allowed: cors.allowedOrigins)
        if case let .allowed(h) = verdict { ctx.responseHeaders += h }
        // Responses differ by Origin unless everything is allowed: caches must know.
        if !cors.allowedOrigins.contains("*"), !ctx.responseHeaders.contains(where: { $0.0 == "Vary" }) {
            ctx.responseHeaders.append(("Vary", "Origin"))
        }
        guard req.method == "OPTIONS" else { return false }
        let methods = gateway.router.allow(path: req.path)
        guard !methods.isEmpty else { throw GatewayError.notFound(req.path) }
        switch verdict {
        case .denied:
            ctx.logNotes.append("cors=denied")
            throw GatewayError.forbidden("Origin not allowed")
        case .allowed:
            ctx.writer.respond(status: 204, headers: ctx.responseHeaders + CORS.preflightHeaders(methods: methods, maxAge: cors.maxAgeSeconds,
                                                                                                  requested: req.header("access-control-request-headers")), body: [])
        case .notCORS:
            ctx.writer.respond(status: 204, headers: ctx.responseHeaders + [("Allow", methods.joined(separator: ", "))], body: [])
        }
        return true
    }
}
