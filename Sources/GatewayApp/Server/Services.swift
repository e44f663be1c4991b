import KimiCore
import Upstream

/// Long-lived collaborators of the pipeline, shared by all worker threads.
/// Grows with the chat and access-control layers.
public final class Services: @unchecked Sendable {
    public let models = ModelsCache()
    public let limiter = MachineRateLimiter()
    /// Upstream answers buffered at once by this process.
    public let buffers: BufferBudget
    public init(maxBufferedBytes: Int = GatewayConfig().server.maxBufferedBytes) {
        buffers = BufferBudget(limit: maxBufferedBytes)
    }
}

extension Services {
    public static func make(config: GatewayConfig, cache: ConfigCache) -> Services {
        UpstreamClient.initialize()
        let services = Services(maxBufferedBytes: config.server.maxBufferedBytes)
        cache.onReload = { [buffers = services.buffers] in buffers.setLimit($0.server.maxBufferedBytes) }
        return services
    }
}
