import CAtomics
import KimiCore
import SharedMemory

/// The process's side of the machine's metrics (issue #14): each event is
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
        init(file: String) {
            self.file = file
            store = MappedMetricsStore(path: file)
        }
    }

    public init() {}

    func store(_ c: GatewayConfig) -> MappedMetricsStore? {
        guard c.metrics.enabled else { return nil }
        if let s = state?.load(), s.file == c.metrics.file { return s.store }
        return lock.withLock {
            if let s = state?.load(), s.file == c.metrics.file { return s.store }
            let fresh = Box(file: c.metrics.file)
            if let state { state.store(fresh) } else { state = AtomicReference(fresh) }
            return fresh.store
        }
    }

    /// Adds `delta` (two's complement for gauges going down).
    func add(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)] = [], _ delta: UInt64 = 1) {
        guard let store = store(c) else { return }
        let text = PrometheusText.series(name, labels)
        if let w = store.word(key: MappedMetricsStore.key(text), text: text) { _ = kimi_atomic_add64(w, delta) }
    }

    func gauge(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)] = [], by delta: Int64) {
        add(c, name, labels, UInt64(bitPattern: delta))
    }

    /// Sets a gauge every process agrees on (`build_info`).
    func set(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)], _ value: Int64) {
        guard let store = store(c) else { return }
        let text = PrometheusText.series(name, labels)
        if let w = store.word(key: MappedMetricsStore.key(text), text: text) { kimi_atomic_store64(w, UInt64(bitPattern: value)) }
    }

    /// One observation of a duration histogram: its bucket and its sum (µs).
    func observe(_ c: GatewayConfig, _ name: String, _ labels: [(String, String)], seconds: Double) {
        add(c, name + "_bucket", labels + [("le", PrometheusText.bucket(seconds))])
        add(c, name + "_sum", labels, UInt64(max(0, seconds * 1_000_000)))
    }

    /// The exposition of the machine's numbers.
    func render(_ c: GatewayConfig) -> String {
        PrometheusText.render(store(c)?.snapshot() ?? [])
    }
}
