import KimiCore

extension Gateway {
    /// `GET /api/info`: what this gateway offers and how it is configured
    /// (no secrets: key counts, not keys).
    func info(_ ctx: RequestContext) throws {
        let c = ctx.config
        var byPath: [(String, [String])] = []
        for e in router.routes {
            if let i = byPath.firstIndex(where: { $0.0 == e.path }) { byPath[i].1.append(e.method) } else { byPath.append((e.path, [e.method])) }
        }
        let endpoints: [JSON] = byPath.map { path, methods in
            ["path": .string(path), "methods": .array(methods.map { .string($0) })]
        }
        let catalogue = services.models.catalogue(config: c, budget: services.buffers)
        let models: [JSON] = catalogue.models(for: ctx.apiKey).map { ["id": .string($0.id), "context_length": .number($0.contextLength)] }
        ctx.json(200, [
            "success": true,
            "data": [
                "name": "kimi-gateway",
                "version": .string(version),
                "description": "Self-hosted Kimi (Moonshot AI) API gateway: app API under /api, OpenAI-compatible API under /v1",
                "endpoints": .array(endpoints),
                "models": .array(models),
                "defaultModel": .string(c.upstream.defaultModel),
                "features": [
                    "authRequired": .bool(c.auth.required),
                    "apiKeysConfigured": .number(c.auth.keys.count),
                    "rateLimit": c.rateLimit.enabled
                        ? ["windowMs": .number(c.rateLimit.policy.windowMs), "maxRequests": .number(c.rateLimit.policy.maxRequests), "algorithm": "GCRA", "shared": true,
                           "tokensPerMinute": c.rateLimit.tokensPerMinute > 0 ? .number(c.rateLimit.tokensPerMinute) : .null]
                        : .bool(false),
                    "usageLedger": .bool(c.usage.enabled && services.usage != nil),
                    "streaming": true,
                    "openAICompatible": true,
                    "simulatedUpstream": .bool(c.upstream.simulated),
                ],
                "limits": [
                    "maxBodyBytes": .number(c.server.maxBodyBytes),
                    "maxMessages": .number(c.limits.maxMessages),
                    "maxChars": .number(c.limits.maxChars),
                    "maxTokens": .number(c.limits.maxTokens),
                ],
            ],
        ])
    }
}
