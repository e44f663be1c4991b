import KimiCore

extension Gateway {
    /// `GET /v1/models`: the upstream's entries for exactly the models this
    /// client may use (`ModelCatalogue`), cached `upstream.modelsCacheSeconds`.
    /// With `anthropic-version` (Claude Code at start): Anthropic's list shape.
    func openAIModels(_ ctx: RequestContext) throws {
        let catalogue = services.models.catalogue(config: ctx.config, budget: services.buffers)
        if ctx.face == .anthropic {
            return ctx.json(200, AnthropicMessages.modelList(catalogue.models(for: ctx.apiKey).map(\.id)))
        }
        ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "application/json; charset=utf-8")],
                           body: catalogue.openAIList(for: ctx.apiKey).serializedBytes())
    }

    /// `GET /api/chat/models`: the same models, with context lengths and the default.
    func appModels(_ ctx: RequestContext) throws {
        let catalogue = services.models.catalogue(config: ctx.config, budget: services.buffers)
        let data: [JSON] = catalogue.models(for: ctx.apiKey).map {
            ["id": .string($0.id), "context_length": .number($0.contextLength), "owned_by": "moonshot",
             "default": .bool($0.id == ctx.config.upstream.defaultModel)]
        }
        ctx.json(200, ["success": true, "data": .array(data)])
    }
}
