import CAtomics
import Glibc
import KimiCore

/// The rate-limit table every gateway process on the machine shares: a
/// `SharedTableFile` of 16-byte slots — client key (0 = empty), TAT in µs
/// since the epoch — created 0600 on first use.
///
/// Concurrency: no locks at all. A slot is claimed with a CAS of its key word
/// from 0; a TAT changes only by CAS (`RateLimiter`). A process that dies
/// mid-operation leaves at most a claimed slot with an old TAT, which is a
/// valid state. Keys probe a window of `probe` slots; when the window is
/// full, the stalest slot is re-keyed: an expired one (TAT in the past)
/// is equivalent to a fresh client, an unexpired one has its TAT reset and
/// the eviction is logged (the table is too small for the traffic).
///
/// Failure: creation, replacement of a corrupt file and the trust check are
/// `SharedTableFile`'s; processes that still map a replaced file notice the
/// new inode within a second and remap. When the file cannot be used at
/// all, `slot` returns nil and the caller falls back to a per-process limit
/// (fails open to per-process limiting, loudly), never to no limit.
public final class MappedRateLimitStore: RateLimitStore, @unchecked Sendable {
    static let magic: UInt64 = 0x3130_4C52_494D_494B // "KIMIRL01"
    static let version: UInt64 = 2
    static let slotBytes = 16
    static let probe = 32

    struct Slot: RateLimitSlot {
        let mapping: SharedTableFile.Mapping // keeps the mapping alive while in use
        let word: UnsafeMutablePointer<UInt64>
        func load() -> Int64 { Int64(bitPattern: kimi_atomic_load64(word)) }
        func compareExchange(expected: Int64, desired: Int64) -> Bool {
            var e = UInt64(bitPattern: expected)
            return kimi_atomic_cas64(word, &e, UInt64(bitPattern: desired))
        }
    }

    /// The mapping in use, or none when the file could not be opened.
    final class Current { let mapping: SharedTableFile.Mapping?; init(_ m: SharedTableFile.Mapping?) { mapping = m } }

    public let capacity: Int
    private let file: SharedTableFile
    private let lock = Lock() // only around reopening
    private let current: AtomicReference<Current>
    private let recheck = IntervalGate(intervalNanos: 1_000_000_000)
    private let evictionLog = IntervalGate(intervalNanos: 10_000_000_000)

    /// Where the table lives (the configured path, or the private fallback).
    public var path: String { file.path }
    /// Tables this process created or replaced.
    public var recreations: Int { file.published }

    public init(path: String, capacity: Int) {
        precondition(kimi_atomic_is_lock_free64(), "64-bit atomics must be lock-free for the shared limiter")
        self.capacity = max(64, capacity)
        file = SharedTableFile(path: path, format: .init(magic: Self.magic, version: Self.version, capacity: self.capacity,
                                                         slotBytes: Self.slotBytes), label: "rate-limit table")
        current = AtomicReference(Current(nil))
        lock.withLock { current.store(Current(file.open())) }
    }

    /// The current mapping, re-validated against the file (replaced, or
    /// truncated in place) at most once a second by one thread; the others
    /// read it without a lock. As the metrics table's: an fstat per call
    /// was 3 of the gateway's 18 syscalls per completion (a check and the
    /// upstream key's health word each; strace -c -f, 2,000 completions),
    /// and only the file's owner can truncate it (0600 in a 0700
    /// directory), which could then fault a process within that second.
    private func mapping() -> SharedTableFile.Mapping? {
        let m = current.load().mapping
        guard recheck.tryEnter() else { return m }
        if let m, !m.intact { lock.withLock { current.store(Current(file.open())) } }
        lock.withLock {
            let now = current.load().mapping
            if now == nil || !file.stillCurrent(now!) { current.store(Current(file.open())) }
        }
        let fresh = current.load().mapping
        return fresh.map { $0.intact ? $0 : nil } ?? nil
    }

    @inline(__always) private func words(_ m: SharedTableFile.Mapping, _ slot: Int) -> UnsafeMutablePointer<UInt64> {
        m.slot(slot, bytes: Self.slotBytes).assumingMemoryBound(to: UInt64.self)
    }

    /// Slots holding a client (for `kimi_gateway_limiter_table_used_slots`):
    /// one pass over the table, at a scrape.
    public func usedSlots() -> Int {
        guard let m = mapping() else { return 0 }
        var n = 0
        for i in 0..<capacity where kimi_atomic_load64(words(m, i)) != 0 { n += 1 }
        return n
    }

    public func slot(for key: UInt64, now: Int64) -> RateLimitSlot? {
        guard let m = mapping() else { return nil }
        let start = Int(key % UInt64(capacity))
        var stalest = -1
        var stalestTAT = Int64.max
        for i in 0..<min(Self.probe, capacity) {
            let s = (start + i) % capacity
            let w = words(m, s)
            var k = kimi_atomic_load64(w)
            if k == key { return Slot(mapping: m, word: w + 1) }
            if k == 0 {
                var expected: UInt64 = 0
                if kimi_atomic_cas64(w, &expected, key) { return Slot(mapping: m, word: w + 1) }
                k = expected
                if k == key { return Slot(mapping: m, word: w + 1) } // another process claimed it for the same client
            }
            let tat = Int64(bitPattern: kimi_atomic_load64(w + 1))
            if tat < stalestTAT { stalestTAT = tat; stalest = s }
        }
        // The window is full of other clients: take over the stalest slot.
        guard stalest >= 0 else { return nil }
        let w = words(m, stalest)
        var old = kimi_atomic_load64(w)
        guard kimi_atomic_cas64(w, &old, key) else { return slot(for: key, now: now) }
        if stalestTAT > now {
            // Still limiting someone: the newcomer starts fresh, and we say so.
            var t = UInt64(bitPattern: stalestTAT)
            _ = kimi_atomic_cas64(w + 1, &t, 0)
            if evictionLog.tryEnter() {
                Log.warn("rate-limit table full around slot \(stalest): evicted an active client (raise rateLimit.tableSize)")
            }
        }
        return Slot(mapping: m, word: w + 1)
    }
}
