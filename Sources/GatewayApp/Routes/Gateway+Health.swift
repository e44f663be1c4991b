import KimiCore

extension Gateway {
    /// `GET /health`: a superset of the shapes front ends already parse
    /// (`{status:"healthy"}` and `{success:true, engine:"ready"}`). Never
    /// authenticated, never rate-limited.
    func health(_ ctx: RequestContext) throws {
        let c = ctx.config
        let upstream = c.upstream.label
        ctx.json(200, [
            "success": true,
            "status": "healthy",
            "engine": "ready",
            "message": "kimi-gateway is running",
            "timestamp": .string(Clock.iso8601()),
            "version": .string(version),
            "upstream": .string(upstream),
            "simulated": .bool(c.upstream.simulated),
        ], headers: [("Cache-Control", "no-store")])
    }
}
