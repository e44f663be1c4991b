import KimiCore

extension Gateway {
    /// `GET /metrics`: the machine's numbers in the Prometheus text format
    /// 0.0.4, whichever process answers. `.monitor` access: a
    /// caller in `metrics.allowFrom` or with an admin key, others 404.
    func metrics(_ ctx: RequestContext) throws {
        guard ctx.config.metrics.enabled else { throw GatewayError.notFound(ctx.request.path) }
        services.metrics.set(ctx.config, "build_info", [("version", version)], 1)
        services.metrics.set(ctx.config, "limiter_table_used_slots", [], Int64(services.limiter.usedSlots(config: ctx.config)))
        ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                                                         ("Cache-Control", "no-store")],
                           body: Array(services.metrics.render(ctx.config).utf8))
    }
}
