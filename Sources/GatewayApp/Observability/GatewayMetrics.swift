import CAtomics
import Glibc
import KimiCore
import SharedMemory

/// The process's side of the machine's metrics: each event is
/// an atomic add on its series' word in the shared table
/// (`MappedMetricsStore`), so every process counts into the same numbers.
/// Labels are bounded by the callers: route patterns, methods, statuses,
/// models from the allowed list, a few fixed words; never a key or a path.
public final class GatewayMetrics: @unchecked Sendable {
    private let lock = Lock() // only to build a new store
    private var state: AtomicReference<Box>?

    final class Box {
        let file: String
        let store: MappedMetricsStore
        /// This process's slot for its own gauges (`ProcessSeries`); nil
        /// when the table cannot be used or all slots have live owners.
        let slot: Int?
        let inFlightKey: Key?
        init(file: String) {
            self.file = file
            store = MappedMetricsStore(path: file)
            slot = Self.claimSlot(store)
            inFlightKey = slot.map { Key("in_flight_requests").mixing(0x9A00 + $0) }
        }

        /// The first slot that is free, ours, or a dead process's (its
        /// words zeroed once it is ours, before they count again).
        static func claimSlot(_ store: MappedMetricsStore) -> Int? {
            let pid = UInt64(getpid())
            for i in 0..<ProcessSeries.maxProcesses {
                let text = ProcessSeries.owner(i)
                guard let w = store.word(key: MappedMetricsStore.key(text), text: text) else { return nil }
                var seen = kimi_atomic_load64(w)
                while true {
                    if seen == pid { return i }
                    if seen != 0, seen <= UInt64(Int32.max), GatewayMetrics.isLive(Int32(seen)) { break }
                    var expected = seen
                    if kimi_atomic_cas64(w, &expected, pid) {
                        for name in ProcessSeries.gauges {
                            let g = ProcessSeries.gauge(i, name)
                            if let gw = store.word(key: MappedMetricsStore.key(g), text: g) { kimi_atomic_store64(gw, 0) }
                        }
                        return i
                    }
                    seen = expected
                }
            }
            return nil
        }
    }

    /// Whether a process with this pid exists (EPERM: it does, another user's).
    static func isLive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    public init() {}

    func store(_ c: GatewayConfig) -> MappedMetricsStore? { box(c)?.store }

    private func box(_ c: GatewayConfig) -> Box? {
        guard c.metrics.enabled else { return nil }
        if let s = state?.load(), s.file == c.metrics.file { return s }
        return lock.withLock {
            if let s = state?.load(), s.file == c.metrics.file { return s }
            let fresh = Box(file: c.metrics.file)
            if let state { state.store(fresh) } else { state = AtomicReference(fresh) }
            return fresh
        }
    }

    /// Adds `delta` (two's complement for gauges going down). The series'
    /// word is found through this thread's cache, keyed by a hash of the
    /// name and label values (no string is built unless the series is new
    /// to this thread): building the text and probing the table on every
    /// event cost ~3 µs each, 35 µs on a completion (bench 2d).
    func add(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)] = [], _ delta: UInt64 = 1) {
        guard let w = word(c, name, labels) else { return }
        _ = kimi_atomic_add64(w, delta)
    }

    private func word(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)]) -> UnsafeMutablePointer<UInt64>? {
        var h: UInt64 = 0xcbf29ce484222325
        @inline(__always) func mix(_ s: String) {
            for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
            h = (h ^ 0xFF) &* 0x100000001b3
        }
        mix(name)
        for (k, v) in labels { mix(k); mix(v) }
        return word(c, hash: h) { PrometheusText.series(name, labels) }
    }

    /// The word of this process's own gauge `name` (`ProcessSeries`).
    private func processWord(_ c: GatewayConfig, _ name: String) -> UnsafeMutablePointer<UInt64>? {
        guard let slot = box(c)?.slot else { return nil }
        var h: UInt64 = 0x9ae16a3b2f90404f ^ UInt64(slot)
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return word(c, hash: h) { ProcessSeries.gauge(slot, name) }
    }

    private func word(_ c: GatewayConfig, hash h: UInt64, _ text: () -> String) -> UnsafeMutablePointer<UInt64>? {
        guard let store = store(c), let m = store.mapping() else { return nil }
        let cache = ThreadCache.current()
        if cache.mapping !== m { (cache.mapping, cache.words) = (m, WordTable()) }
        if let w = cache.words[h] { return w }
        let text = text()
        guard let w = store.word(in: m, key: MappedMetricsStore.key(text), text: { text }) else { return nil }
        cache.words[h] = w
        return w
    }

    /// The events of one request, counted through one look-up of the
    /// store, its mapping and this thread's cache. Series are found by a
    /// key the caller mixes from the family and the label values (`Key`),
    /// their text built only when this thread meets the series first: the
    /// per-event path (label arrays, bucket strings, a store look-up each)
    /// cost ~33,000 instructions a completion, 10 % of the gateway's
    /// (callgrind, bench 2d).
    struct Batch {
        let store: MappedMetricsStore
        let mapping: SharedTableFile.Mapping
        let cache: ThreadCache
        let slot: Int?

        func add(_ key: Key, _ delta: UInt64 = 1, _ text: () -> String) {
            if let w = cache.words[key.value] {
                _ = kimi_atomic_add64(w, delta)
                return
            }
            let t = text()
            guard let w = store.word(in: mapping, key: MappedMetricsStore.key(t), text: { t }) else { return }
            cache.words[key.value] = w
            _ = kimi_atomic_add64(w, delta)
        }

        /// One observation of a duration histogram: its bucket and its sum (µs).
        func observe(_ key: Key, _ name: String, seconds: Double, _ labels: () -> [(String, String)]) {
            let i = PrometheusText.bucketIndex(seconds)
            add(key.mixing(0xB0 + i)) { PrometheusText.series(name + "_bucket", labels() + [("le", PrometheusText.bucketLabel(i))]) }
            add(key.mixing(0x5A), UInt64(max(0, seconds * 1_000_000))) { PrometheusText.series(name + "_sum", labels()) }
        }

        /// Changes this process's own gauge (see `ProcessSeries`).
        func processGauge(_ name: String, by delta: Int64) {
            guard let slot else { return }
            add(Key(name).mixing(0x9A00 + slot), UInt64(bitPattern: delta)) { ProcessSeries.gauge(slot, name) }
        }

        /// This process's `in_flight_requests`, up or down one: twice a
        /// request, its key mixed once per process (`Box.inFlightKey`).
        func inFlight(by delta: Int64) {
            guard let slot, let key = inFlightKey else { return }
            add(key, UInt64(bitPattern: delta)) { ProcessSeries.gauge(slot, "in_flight_requests") }
        }
        let inFlightKey: Key?
    }

    /// A series key: FNV-1a over the family name and the label values (and
    /// small integers such as a status or a bucket's index).
    struct Key {
        private(set) var value: UInt64 = 0xcbf29ce484222325
        init(_ family: String) { self = self.mixing(family) }
        /// A label value's own key, to mix into several families' keys
        /// (`mixing(_: Key)`): the string is hashed once, not once a family.
        static func label(_ value: String) -> Key { Key(value: 0x84222325cbf29ce4).mixing(value) }
        private init(value: UInt64) { self.value = value }
        /// Over the string's contiguous UTF-8 (`for b in s.utf8` cost ~60
        /// instructions a byte here, 6,600 a completion: callgrind, bench 2d).
        func mixing(_ s: String) -> Key {
            var k = self
            var s = s
            s.withUTF8 { bytes in
                for b in bytes { k.value = (k.value ^ UInt64(b)) &* 0x100000001b3 }
            }
            k.value = (k.value ^ 0xFF) &* 0x100000001b3
            return k
        }
        func mixing(_ label: Key) -> Key {
            var k = self
            k.value = (k.value ^ label.value) &* 0x100000001b3
            k.value = (k.value ^ 0xFD) &* 0x100000001b3
            return k
        }
        func mixing(_ n: Int) -> Key {
            var k = self
            k.value = (k.value ^ UInt64(bitPattern: Int64(n))) &* 0x100000001b3
            k.value = (k.value ^ 0xFE) &* 0x100000001b3
            return k
        }
    }

    /// The batch for this thread, nil when metrics are off or the table cannot be used.
    func batch(_ c: GatewayConfig) -> Batch? {
        guard let b = box(c), let m = b.store.mapping() else { return nil }
        let cache = ThreadCache.current()
        if cache.mapping !== m { (cache.mapping, cache.words) = (m, WordTable()) }
        return Batch(store: b.store, mapping: m, cache: cache, slot: b.slot, inFlightKey: b.inFlightKey)
    }

    /// A thread's series words by their 64-bit key, which is already a
    /// hash: open addressing with linear probing, no re-hashing (a
    /// `Dictionary<UInt64, _>` ran SipHash on every look-up, ~3,800
    /// instructions a completion). Keys are never 0 (0 marks a free place).
    struct WordTable {
        private var keys = [UInt64](repeating: 0, count: 64)
        private var words = [UnsafeMutablePointer<UInt64>?](repeating: nil, count: 64)
        private var count = 0

        subscript(key: UInt64) -> UnsafeMutablePointer<UInt64>? {
            get {
                let k = key == 0 ? 1 : key
                let mask = keys.count - 1
                var i = Int(truncatingIfNeeded: k) & mask
                while true {
                    let here = keys[i]
                    if here == k { return words[i] }
                    if here == 0 { return nil }
                    i = (i + 1) & mask
                }
            }
            set {
                guard let newValue else { return } // words are only ever added
                let k = key == 0 ? 1 : key
                if (count + 1) * 2 > keys.count { grow() }
                let mask = keys.count - 1
                var i = Int(truncatingIfNeeded: k) & mask
                while keys[i] != 0 && keys[i] != k { i = (i + 1) & mask }
                if keys[i] == 0 { count += 1 }
                (keys[i], words[i]) = (k, newValue)
            }
        }

        private mutating func grow() {
            let (oldKeys, oldWords) = (keys, words)
            keys = [UInt64](repeating: 0, count: oldKeys.count * 2)
            words = [UnsafeMutablePointer<UInt64>?](repeating: nil, count: oldKeys.count * 2)
            count = 0
            for (k, w) in zip(oldKeys, oldWords) where k != 0 { self[k] = w }
        }
    }

    /// Each thread's series words (the mapping they point into is held).
    final class ThreadCache {
        var mapping: AnyObject?
        var words = WordTable()

        private static let key: pthread_key_t = {
            var k = pthread_key_t()
            pthread_key_create(&k) { p in
                guard let p else { return }
                Unmanaged<ThreadCache>.fromOpaque(p).release()
            }
            return k
        }()

        static func current() -> ThreadCache {
            if let p = pthread_getspecific(key) { return Unmanaged<ThreadCache>.fromOpaque(p).takeUnretainedValue() }
            let c = ThreadCache()
            pthread_setspecific(key, Unmanaged.passRetained(c).toOpaque())
            return c
        }
    }

    /// Changes this process's own gauge (see `ProcessSeries`).
    func processGauge(_ c: GatewayConfig, _ name: String, by delta: Int64) {
        batch(c)?.processGauge(name, by: delta)
    }

    /// Sets this process's own gauge.
    public func setProcessGauge(_ c: GatewayConfig, _ name: String, _ value: Int) {
        if let w = processWord(c, name) { kimi_atomic_store64(w, UInt64(bitPattern: Int64(value))) }
    }

    /// Counts one event of a family without labels (`worker_restarts_total`, ...).
    public func count(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)] = []) { add(c, name, labels) }

    /// Sets a gauge every process agrees on (`build_info`).
    func set(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)], _ value: Int64) {
        if let w = word(c, name, labels) { kimi_atomic_store64(w, UInt64(bitPattern: value)) }
    }

    /// One observation of a duration histogram: its bucket and its sum (µs).
    func observe(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)], seconds: Double) {
        add(c, name + "_bucket", labels + [("le", PrometheusText.bucketLabel(PrometheusText.bucketIndex(seconds)))])
        add(c, name + "_sum", labels, UInt64(max(0, seconds * 1_000_000)))
    }

    /// The exposition of the machine's numbers.
    func render(_ c: GatewayConfig) -> String {
        PrometheusText.render(ProcessSeries.fold(store(c)?.snapshot() ?? [], isLive: Self.isLive))
    }
}
