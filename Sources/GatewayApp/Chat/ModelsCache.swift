import KimiCore
import Upstream

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
