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

/// The upstream model list, shared by the threads of a process.
public final class ModelsCache: @unchecked Sendable {
    private let cached = Locked<(at: UInt64, list: JSON)?>(nil)

    func list(config: GatewayConfig, budget: BufferBudget) -> JSON {
        let now = Clock.monotonicNanos()
        if let c = cached.get(), now &- c.at < UInt64(config.upstream.modelsCacheSeconds) * 1_000_000_000 { return c.list }
        let req = config.upstreamRequest("GET", "/models", idleMs: min(config.upstream.idleTimeoutMs, 10_000))
        if let call = try? BufferedCall.run(req, apiKey: config.upstream.apiKey, budget: budget),
           let list = try? JSON.parse(call.body), list["data"]?.arrayValue != nil
        {
            cached.set((now, list))
            return list
        }
        if let stale = cached.get() { return stale.list }
        return ["object": "list", "data": .array(config.upstream.models.map {
            ["id": .string($0.id), "object": "model", "created": 0, "owned_by": "moonshot"]
        })]
    }
}
