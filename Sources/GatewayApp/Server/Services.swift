import KimiCore
import Upstream

/// Long-lived collaborators of the pipeline, shared by all worker threads.
/// Grows with the chat and access-control layers.
public final class Services: @unchecked Sendable {
    public let models = ModelsCache()
    public let limiter = SharedRateLimiter()
    public init() {}
}

extension Services {
    static func make(config: GatewayConfig, cache: ConfigCache) -> Services {
        UpstreamClient.initialize()
        return Services()
    }
}
