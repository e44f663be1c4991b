/// Where the limiter's words live. Production: a memory-mapped file shared
/// by every process (`MappedRateLimitStore`); tests and the fallback: memory.
public protocol RateLimitStore: AnyObject, Sendable {
    /// The slot for `key`, found or claimed. Nil when the store cannot serve.
    func slot(for key: UInt64, now: Int64) -> RateLimitSlot?
}

/// One client's TAT word with atomic access.
public protocol RateLimitSlot {
    func load() -> Int64
    func compareExchange(expected: Int64, desired: Int64) -> Bool
}

/// GCRA over a store: read the TAT, decide, and commit with one
/// compare-and-swap; a lost race re-reads and decides again, so admissions
/// are exact across threads and processes.
public final class RateLimiter: Sendable {
    public let store: RateLimitStore
    public init(store: RateLimitStore) { self.store = store }

    public func check(key: UInt64, policy: GCRA, now: Int64 = Clock.wallMicros()) -> GCRA.Decision? {
        update(key: key, now: now) { tat in
            let d = policy.decide(tat: tat, now: now)
            return (d.allowed ? d.newTAT : nil, d)
        }
    }

    /// Reserves `tokens` under a token policy (`TokenGCRA`).
    public func reserve(key: UInt64, tokens: Int, policy: TokenGCRA, now: Int64) -> TokenGCRA.Decision? {
        update(key: key, now: now) { tat in
            let d = policy.reserve(tokens: tokens, tat: tat, now: now)
            return (d.allowed ? d.newTAT : nil, d)
        }
    }

    /// Settles a reservation with what was used (`delta` = used − reserved).
    @discardableResult
    public func settle(key: UInt64, delta: Int, policy: TokenGCRA, now: Int64) -> Bool {
        guard delta != 0 else { return true }
        return update(key: key, now: now) { tat in (policy.settle(delta: delta, tat: tat, now: now), ()) } != nil
    }

    /// The one read-decide-CAS loop: `decide` maps the stored word to the
    /// word to store (nil: leave it) and a result; a lost race decides
    /// again on the fresh word. `nowMicros` is for the store's eviction.
    public func update<R>(key: UInt64, now nowMicros: Int64, _ decide: (Int64) -> (Int64?, R)) -> R? {
        guard let slot = store.slot(for: key, now: nowMicros) else { return nil }
        while true {
            let old = slot.load()
            let (new, result) = decide(old)
            guard let new else { return result }
            if new == old || slot.compareExchange(expected: old, desired: new) { return result }
        }
    }

    /// A stable 64-bit key for a client under a policy (FNV-1a with a
    /// splitmix64 finaliser). 0 is reserved for empty slots.
    public static func key(client: String, policy: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in policy.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        h = (h ^ 0x1F) &* 0x100000001b3
        for b in client.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        h ^= h >> 30; h = h &* 0xbf58476d1ce4e5b9
        h ^= h >> 27; h = h &* 0x94d049bb133111eb
        h ^= h >> 31
        return h == 0 ? 1 : h
    }
}

/// The in-process store: per-process limits only. Used by unit tests and
/// as the fallback when the shared file cannot be used.
public final class MemoryRateLimitStore: RateLimitStore, @unchecked Sendable {
    final class Slot: RateLimitSlot {
        let lock: Lock
        var tat: Int64 = 0
        init(lock: Lock) { self.lock = lock }
        func load() -> Int64 { lock.withLock { tat } }
        func compareExchange(expected: Int64, desired: Int64) -> Bool {
            lock.withLock {
                guard tat == expected else { return false }
                tat = desired
                return true
            }
        }
    }

    private let lock = Lock()
    private var slots: [UInt64: Slot] = [:]
    private let capacity: Int

    public init(capacity: Int = 65_536) { self.capacity = capacity }

    public func slot(for key: UInt64, now: Int64) -> RateLimitSlot? {
        lock.withLock {
            if let s = slots[key] { return s }
            if slots.count >= capacity {
                // Evict what has fully recovered (its TAT is in the past).
                slots = slots.filter { $0.value.tat > now }
                if slots.count >= capacity, let stalest = slots.min(by: { $0.value.tat < $1.value.tat }) {
                    slots.removeValue(forKey: stalest.key)
                }
            }
            let s = Slot(lock: lock)
            slots[key] = s
            return s
        }
    }
}
