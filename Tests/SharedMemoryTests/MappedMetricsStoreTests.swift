import CAtomics
import Glibc
import Testing
@testable import KimiCore
@testable import SharedMemory

/// Issue #14: the machine's metrics table, counted into by 4 real processes.
@Suite struct MappedMetricsStoreTests {
    static let series = #"kimi_gateway_requests_total{route="/health",method="GET",status="200"}"#

    @Test func fourForkedProcessesCountIntoTheSameSeriesExactly() throws {
        let path = ForkedProcesses.temporaryDirectory("kimi-metrics-test") + "/metrics.bin"
        let parent = MappedMetricsStore(path: path, capacity: 256)
        let key = MappedMetricsStore.key(Self.series)
        // Everything the children run is built (and run once) before the
        // fork: a child of this multi-threaded runner must not instantiate
        // runtime metadata another thread may have been holding a lock on.
        let texts = (0..<40).map { "kimi_gateway_x_\($0)" }
        let keys = texts.map { MappedMetricsStore.key($0) }
        func run(_ store: MappedMetricsStore, _ rounds: Int) -> Int32 {
            for i in 0..<rounds {
                guard let w = store.word(key: key, text: Self.series), let own = store.word(key: keys[i % 40], text: texts[i % 40]) else { return 1 }
                _ = kimi_atomic_add64(w, 1)
                _ = kimi_atomic_add64(own, 1)
            }
            return 0
        }
        let codes = ForkedProcesses.together(4, warmUp: {
            _ = run(MappedMetricsStore(path: path, capacity: 256), 0)
            for (k, t) in zip(keys, texts) { _ = parent.word(key: k, text: t) }
            _ = parent.word(key: key, text: Self.series)
        }) {
            run(MappedMetricsStore(path: path, capacity: 256), 5000)
        }
        #expect(codes == [0, 0, 0, 0])
        let snap = Dictionary(parent.snapshot().map { ($0.text, $0.value) }, uniquingKeysWith: +)
        #expect(snap[Self.series] == 20_000)
        #expect(keys.indices.map { snap[texts[$0]] ?? 0 }.reduce(0, +) == 20_000)
        #expect(snap.count == 41) // one slot per series, however many processes use it
    }

    @Test func aFullTableDropsNewSeriesInsteadOfEvicting() {
        let path = ForkedProcesses.temporaryDirectory("kimi-metrics-full") + "/metrics.bin"
        let store = MappedMetricsStore(path: path, capacity: 64)
        var claimed = 0
        for i in 0..<200 where store.word(key: MappedMetricsStore.key("s\(i)"), text: "s\(i)") != nil { claimed += 1 }
        #expect(claimed == 64 && store.snapshot().count == 64)
    }
}
