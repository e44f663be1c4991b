import KimiCore
import SharedMemory

/// The process's limiter: the shared memory-mapped file, rebuilt when the
/// config names another file or size, and a per-process memory store when
/// the file cannot be used (logged; the limit then holds per process).
/// Read without a lock on every request (see `AtomicReference`).
public final class MachineRateLimiter: @unchecked Sendable {
    final class State {
        let file: String
        let size: Int
        let shared: RateLimiter
        init(file: String, size: Int) {
            self.file = file
            self.size = size
            shared = RateLimiter(store: MappedRateLimitStore(path: file, capacity: size))
        }
    }

    private let lock = Lock() // only to build a new state
    private var state: AtomicReference<State>?
    fileprivate let fallback = RateLimiter(store: MemoryRateLimitStore())
    private let fallbackLog = IntervalGate(intervalNanos: 10_000_000_000)

    public init() {}

    func limiter(for c: GatewayConfig) -> RateLimiter {
        if let s = state?.load(), s.file == c.rateLimit.file, s.size == c.rateLimit.tableSize { return s.shared }
        return lock.withLock {
            if let s = state?.load(), s.file == c.rateLimit.file, s.size == c.rateLimit.tableSize { return s.shared }
            let fresh = State(file: c.rateLimit.file, size: c.rateLimit.tableSize)
            if let state { state.store(fresh) } else { state = AtomicReference(fresh) }
            return fresh.shared
        }
    }

    public func check(key: UInt64, policy: GCRA, config: GatewayConfig, now: Int64) -> GCRA.Decision {
        if let d = limiter(for: config).check(key: key, policy: policy, now: now) { return d }
        if fallbackLog.tryEnter() {
            Log.error("rate-limit file \(config.rateLimit.file) unusable: limiting per process until it works again")
        }
        return fallback.check(key: key, policy: policy, now: now)!
    }

    /// Reserves tokens in the same table (the token policy's words live beside the request policy's).
    public func reserve(key: UInt64, tokens: Int, policy: TokenGCRA, config: GatewayConfig, now: Int64) -> TokenGCRA.Decision {
        if let d = limiter(for: config).reserve(key: key, tokens: tokens, policy: policy, now: now) { return d }
        if fallbackLog.tryEnter() {
            Log.error("rate-limit file \(config.rateLimit.file) unusable: limiting tokens per process until it works again")
        }
        return fallback.reserve(key: key, tokens: tokens, policy: policy, now: now)!
    }

    /// Settles a reservation; when the table changed meanwhile (a reload
    /// naming another file) the difference goes to the table in use now.
    public func settle(key: UInt64, delta: Int, policy: TokenGCRA, config: GatewayConfig, now: Int64) {
        if !limiter(for: config).settle(key: key, delta: delta, policy: policy, now: now) {
            fallback.settle(key: key, delta: delta, policy: policy, now: now)
        }
    }
}

extension MachineRateLimiter {
    /// Slots in use in the shared table (0 when it cannot be used).
    public func usedSlots(config: GatewayConfig) -> Int {
        (limiter(for: config).store as? MappedRateLimitStore)?.usedSlots() ?? 0
    }

    /// A read-decide-CAS on any word of the table (the upstream keys' health
    /// lives beside the limits), falling back to the per-process store.
    public func update<R>(key: UInt64, config: GatewayConfig, now: Int64, _ decide: (Int64) -> (Int64?, R)) -> R {
        if let r = limiter(for: config).update(key: key, now: now, decide) { return r }
        return fallback.update(key: key, now: now, decide)!
    }
}
