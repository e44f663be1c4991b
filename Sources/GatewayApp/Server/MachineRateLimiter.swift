import Fleet
import KimiCore
import SharedMemory

/// The process's limiter: with `state.backend` `redis`, the fleet's Redis
/// first (one exact limit across machines); the machine's shared
/// memory-mapped file, rebuilt when the config names another file or size,
/// whenever Redis is not in use or does not answer in time (fails open to
/// the machine's own exact limit, loudly); and a per-process memory store
/// when the file cannot be used either (logged; the limit then holds per
/// process). Read without a lock on every request (see `AtomicReference`).
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

    private var fleet: AtomicReference<RedisWordStore>?
    /// Called for each decision the file made because Redis did not answer
    /// (`kimi_gateway_state_fallbacks_total`).
    public var onFallback: (@Sendable (GatewayConfig) -> Void)?

    public init() {}

    /// The fleet's store when the config says Redis, rebuilt when its
    /// endpoint, timeout or prefix change.
    func fleetStore(for c: GatewayConfig) -> RedisWordStore? {
        guard c.state.backend == .redis, let e = c.redis.endpoint else { return nil }
        let same = { (s: RedisWordStore) in s.endpoint == e && s.timeoutMs == c.redis.timeoutMs && s.prefix == c.redis.prefix }
        if let s = fleet?.load(), same(s) { return s }
        return lock.withLock {
            if let s = fleet?.load(), same(s) { return s }
            let fresh = RedisWordStore(endpoint: e, timeoutMs: c.redis.timeoutMs, prefix: c.redis.prefix)
            if let fleet { fleet.store(fresh) } else { fleet = AtomicReference(fresh) }
            return fresh
        }
    }

    /// Opens the machine's table for `c` now (each worker at its start):
    /// a file that cannot be used is reported when the process starts, not
    /// at its first limited request, and the process holds its descriptors
    /// from the start (the bench's leak check compares them at two marks,
    /// and a worker that had served no limited request yet counted one more
    /// at the second).
    public func open(for c: GatewayConfig) { _ = limiter(for: c) }

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
        if let f = fleetStore(for: config) {
            // Redis's clock: the same decision the script made (see `FleetScripts.step`).
            if let r = f.step(slot: key, cost: policy.interval, window: policy.windowMicros) { return policy.decide(tat: r.stored, now: r.now) }
            onFallback?(config)
        }
        if let d = limiter(for: config).check(key: key, policy: policy, now: now) { return d }
        if fallbackLog.tryEnter() {
            Log.error("rate-limit file \(config.rateLimit.file) unusable: limiting per process until it works again")
        }
        return fallback.check(key: key, policy: policy, now: now)!
    }

    /// Reserves tokens in the same table (the token policy's words live beside the request policy's).
    public func reserve(key: UInt64, tokens: Int, policy: TokenGCRA, config: GatewayConfig, now: Int64) -> TokenGCRA.Decision {
        if let f = fleetStore(for: config) {
            // More than the limit can never fit: a cost beyond the window is never admitted.
            let cost = tokens > policy.limit ? policy.windowMicros + 1 : policy.span(tokens)
            if let r = f.step(slot: key, cost: cost, window: policy.windowMicros) { return policy.reserve(tokens: tokens, tat: r.stored, now: r.now) }
            onFallback?(config)
        }
        if let d = limiter(for: config).reserve(key: key, tokens: tokens, policy: policy, now: now) { return d }
        if fallbackLog.tryEnter() {
            Log.error("rate-limit file \(config.rateLimit.file) unusable: limiting tokens per process until it works again")
        }
        return fallback.reserve(key: key, tokens: tokens, policy: policy, now: now)!
    }

    /// Settles a reservation; when the table changed meanwhile (a reload
    /// naming another file) the difference goes to the table in use now.
    public func settle(key: UInt64, delta: Int, policy: TokenGCRA, config: GatewayConfig, now: Int64) {
        guard delta != 0 else { return }
        if let f = fleetStore(for: config) {
            let span = delta >= 0 ? policy.span(delta) : -policy.span(-delta)
            if f.settle(slot: key, span: span, window: policy.windowMicros) { return }
            onFallback?(config)
        }
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
        if let f = fleetStore(for: config) {
            if let r = Self.update(f, key: key, now: now, decide) { return r }
            onFallback?(config)
        }
        if let r = limiter(for: config).update(key: key, now: now, decide) { return r }
        return fallback.update(key: key, now: now, decide)!
    }
}

extension MachineRateLimiter {
    /// How long a word changed by `update` (key health) lives in Redis: far
    /// beyond any cooling or disabled time, and bounded.
    static let wordTTLMillis: Int64 = 86_400_000

    /// How old a key-health word read from Redis may be: every attempt
    /// reads every key's word (a pool of 3 keys was 4 round trips a
    /// request); another machine's lesson reaches this process within this.
    static let wordMaxAgeNanos: UInt64 = 100_000_000

    /// The read-decide-CAS loop of `RateLimiter.update` on Redis: a GET (or
    /// this process's copy of at most `wordMaxAgeNanos`), and a
    /// compare-and-set script only when the word changes (key health:
    /// rare; a stale copy makes it fail and decide again on the current
    /// word). Nil when Redis did not answer (the file decides).
    static func update<R>(_ f: RedisWordStore, key: UInt64, now: Int64, _ decide: (Int64) -> (Int64?, R)) -> R? {
        guard var old = f.load(slot: key, maxAgeNanos: wordMaxAgeNanos) else { return nil }
        while true {
            let (new, result) = decide(old)
            guard let new, new != old else { return result }
            guard let (won, current) = f.compareExchange(slot: key, expected: old, desired: new, ttlMillis: wordTTLMillis) else { return nil }
            if won { return result }
            old = current
        }
    }
}
