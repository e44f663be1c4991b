import KimiCore

extension Gateway {
    /// `GET /health`: a superset of the shapes front ends already parse
    /// (`{status:"healthy"}` and `{success:true, engine:"ready"}`). Never
    /// authenticated, never rate-limited. With the key pool:
    /// `keys` lists every upstream key by name and fingerprint with its
    /// state; `status` is `degraded` (200) while some are out and
    /// `unavailable` (503, `Retry-After`) when none is usable.
    func health(_ ctx: RequestContext) throws {
        let c = ctx.config
        let now = Clock.wallMicros()
        var groups: [KeyHealth.Condition: [JSON]] = [:]
        var soonest = Int64.max
        for (key, h) in services.pool.snapshot(config: c, now: now) {
            var entry: [(String, JSON)] = [("name", .string(key.name)), ("fingerprint", .string(key.fingerprint)), ("baseURL", .string(key.baseURL))]
            if h.condition != .healthy {
                entry.append(("reason", .string(h.reason.text)))
                // 0: due (a disabled key's next request probes it).
                entry.append(("retryInSeconds", .number(Int((max(0, h.until - now) + 999_999) / 1_000_000))))
                soonest = min(soonest, h.until)
            }
            // A probing key is still out for everyone but its one probe.
            groups[h.condition == .probing ? .disabled : h.condition, default: []].append(.object(entry))
        }
        let healthy = groups[.healthy]?.count ?? 0
        let status = healthy == c.upstream.keys.count ? "healthy" : (healthy > 0 ? "degraded" : "unavailable")
        var headers = [("Cache-Control", "no-store")]
        if healthy == 0 { headers.append(("Retry-After", String(max(1, Int((soonest - now) / 1_000_000) + 1)))) }
        ctx.json(healthy > 0 ? 200 : 503, [
            "success": .bool(healthy > 0),
            "status": .string(status),
            "engine": healthy > 0 ? "ready" : "unavailable",
            "message": .string(healthy > 0 ? "kimi-gateway is running" : "every upstream key is cooling down or refused"),
            "timestamp": .string(Clock.iso8601()),
            "version": .string(version),
            "upstream": .string(c.upstream.label),
            "simulated": .bool(c.upstream.simulated),
            "keys": ["healthy": .array(groups[.healthy] ?? []), "cooling": .array(groups[.cooling] ?? []),
                     "disabled": .array(groups[.disabled] ?? [])],
            "state": stateJSON(c),
        ], headers: headers)
    }

    /// Where limits and key health live now: `shared` is false
    /// while this process decides on its file because Redis does not answer.
    private func stateJSON(_ c: GatewayConfig) -> JSON {
        guard let fleet = services.limiter.fleetStore(for: c) else { return ["backend": "file"] }
        return ["backend": "redis", "redis": .string(fleet.endpoint.description), "shared": .bool(fleet.isUp)]
    }
}
