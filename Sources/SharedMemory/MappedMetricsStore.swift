import CAtomics
import Glibc
import KimiCore

/// The machine's metrics: one memory-mapped file every gateway
/// process adds to with atomics, so `GET /metrics`, answered by whichever
/// process nginx picks, reports the whole machine; a process that dies
/// keeps its counts. Creation, replacement and trust are `SharedTableFile`'s,
/// as for the limiter.
///
/// A slot (128 bytes) is one series: word 0 its key (a hash of its text;
/// 0 = empty), word 1 its value, word 2 the length of its text (stored
/// last: 0 while the claimer is still writing it, and readers skip it),
/// then up to 104 bytes of text — the series as the exposition prints it,
/// e.g. `kimi_gateway_requests_total{route="/v1/chat/completions",method="POST",status="200"}`.
/// Claimed by CAS of word 0 from 0, never freed: series are bounded by
/// design (route patterns, known models, a few statuses), and a full
/// table drops new series (logged) rather than evict counts.
public final class MappedMetricsStore: @unchecked Sendable {
    static let magic: UInt64 = 0x3130_5254_4D49_4B4B // "KKIMTR01"
    static let version: UInt64 = 1
    public static let slotBytes = 128
    public static let maxText = slotBytes - 24
    static let probe = 64

    public let capacity: Int
    private let file: SharedTableFile
    private let lock = Lock() // only around reopening
    private let current: AtomicReference<Current>
    private let recheck = IntervalGate(intervalNanos: 1_000_000_000)
    private let fullLog = IntervalGate(intervalNanos: 60_000_000_000)

    final class Current { let mapping: SharedTableFile.Mapping?; init(_ m: SharedTableFile.Mapping?) { mapping = m } }

    public var path: String { file.path }

    public init(path: String, capacity: Int = 4096) {
        precondition(kimi_atomic_is_lock_free64(), "64-bit atomics must be lock-free for the shared metrics")
        self.capacity = max(64, capacity)
        file = SharedTableFile(path: path, format: .init(magic: Self.magic, version: Self.version, capacity: self.capacity,
                                                         slotBytes: Self.slotBytes), label: "metrics table")
        current = AtomicReference(Current(nil))
        lock.withLock { current.store(Current(file.open())) }
    }

    /// The mapping in use (re-validated at most once a second): word
    /// pointers from `word(in:key:text:)` stay valid while it is held.
    /// Unlike the limiter's, the file's size is checked only then, not per
    /// call (an fstat per event was most of the cost of counting): a
    /// table truncated in place by its owner could fault within that second.
    public func mapping() -> SharedTableFile.Mapping? {
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

    /// A stable key for a series text (FNV-1a, never 0).
    public static func key(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        h ^= h >> 31
        return h == 0 ? 1 : h
    }

    /// The value word of the series, found or claimed (its text written).
    /// Nil when the file cannot be used or the table is full.
    public func word(key: UInt64, text: String) -> UnsafeMutablePointer<UInt64>? {
        guard let m = mapping() else { return nil }
        return word(in: m, key: key, text: { text })
    }

    /// As above in a mapping the caller holds; `text` is built only to claim a slot.
    public func word(in m: SharedTableFile.Mapping, key: UInt64, text: () -> String) -> UnsafeMutablePointer<UInt64>? {
        let start = Int(key % UInt64(capacity))
        for i in 0..<min(Self.probe, capacity) {
            let w = m.slot((start + i) % capacity, bytes: Self.slotBytes).assumingMemoryBound(to: UInt64.self)
            var k = kimi_atomic_load64(w)
            if k == 0 {
                var expected: UInt64 = 0
                if kimi_atomic_cas64(w, &expected, key) {
                    var t = Array(text().utf8.prefix(Self.maxText))
                    t.withUnsafeMutableBytes { UnsafeMutableRawPointer(w + 3).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                    kimi_atomic_store64(w + 2, UInt64(t.count))
                    return w + 1
                }
                k = expected
            }
            if k == key { return w + 1 }
        }
        if fullLog.tryEnter() { Log.warn("metrics table \(path) is full (\(capacity) series): new series are not counted") }
        return nil
    }

    /// Every series with its text written: (text, value).
    public func snapshot() -> [(text: String, value: UInt64)] {
        guard let m = mapping() else { return [] }
        var out: [(String, UInt64)] = []
        for i in 0..<capacity {
            let w = m.slot(i, bytes: Self.slotBytes).assumingMemoryBound(to: UInt64.self)
            guard kimi_atomic_load64(w) != 0 else { continue }
            let n = Int(kimi_atomic_load64(w + 2))
            guard n > 0, n <= Self.maxText else { continue }
            let text = String(decoding: UnsafeRawBufferPointer(start: UnsafeRawPointer(w + 3), count: n), as: UTF8.self)
            out.append((text, kimi_atomic_load64(w + 1)))
        }
        return out
    }

    /// Series in use (for `limiter_table_used_slots`-style gauges of this table).
    public var used: Int { snapshot().count }
}
