import KimiCore
import Upstream

extension Gateway {
    /// `GET /v1/models`: the upstream's list, cached for
    /// `upstream.modelsCacheSeconds`; when the upstream cannot be reached,
    /// the last good list, else the configured models.
    func openAIModels(_ ctx: RequestContext) throws {
        ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "application/json; charset=utf-8")],
                           body: services.models.list(config: ctx.config, budget: services.buffers).serializedBytes())
    }

    /// `GET /api/chat/models`: the models this gateway allows, with context lengths.
    func appModels(_ ctx: RequestContext) throws {
        let allowed = Set(ctx.allowedModels)
        let data: [JSON] = ctx.config.upstream.models.filter { allowed.contains($0.id) }.map {
            ["id": .string($0.id), "context_length": .number($0.contextLength), "owned_by": "moonshot",
             "default": .bool($0.id == ctx.config.upstream.defaultModel)]
        }
        ctx.json(200, ["success": true, "data": .array(data)])
    }
}
