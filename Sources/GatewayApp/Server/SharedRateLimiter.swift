import KimiCore
import SharedLimiter

/// The process's limiter: the shared memory-mapped file, rebuilt when the
/// config names another file or size, and a per-process memory store when
/// the file cannot be used (logged; the limit then holds per process).
public final class SharedRateLimiter: @unchecked Sendable {
    private let state = Locked<(file: String, size: Int, limiter: RateLimiter, fallback: RateLimiter)?>(nil)
    private var lastFallbackLog: UInt64 = 0

    public init() {}

    func limiter(for c: GatewayConfig) -> (RateLimiter, RateLimiter) {
        state.update { s in
            if let s, s.file == c.rateLimit.file, s.size == c.rateLimit.tableSize { return (s.limiter, s.fallback) }
            let shared = RateLimiter(store: MappedLimiterStore(path: c.rateLimit.file, capacity: c.rateLimit.tableSize))
            let fallback = s?.fallback ?? RateLimiter(store: MemoryLimiterStore())
            s = (c.rateLimit.file, c.rateLimit.tableSize, shared, fallback)
            return (shared, fallback)
        }
    }

    public func check(key: UInt64, policy: GCRA, config: GatewayConfig, now: Int64) -> GCRA.Decision {
        let (shared, fallback) = limiter(for: config)
        if let d = shared.check(key: key, policy: policy, now: now) { return d }
        let n = Clock.monotonicNanos()
        if n &- lastFallbackLog > 10_000_000_000 {
            lastFallbackLog = n
            Log.error("rate-limit file \(config.rateLimit.file) unusable: limiting per process until it works again")
        }
        return fallback.check(key: key, policy: policy, now: now)!
    }
}
