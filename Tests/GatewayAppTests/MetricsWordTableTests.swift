import Testing
@testable import GatewayApp

@Suite struct MetricsWordTableTests {
    @Test func findsEveryWordItWasGivenAcrossGrowthAndNothingElse() {
        var table = GatewayMetrics.WordTable()
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: 1000)
        defer { storage.deallocate() }
        var rng = SystemRandomNumberGenerator()
        // 0 and keys that collide in the low bits, besides random ones.
        let keys = [0, 64, 128, 1 << 40] + (0..<996).map { _ in rng.next() as UInt64 }
        for (i, k) in keys.enumerated() { table[k] = storage + i }
        for (i, k) in keys.enumerated() { #expect(table[k] == storage + i) }
        #expect(table[12345] == nil || keys.contains(12345))
        table[64] = storage + 999
        #expect(table[64] == storage + 999)
    }

    @Test func seriesKeysMixTheSameBytesAsBefore() {
        // The fast path over contiguous UTF-8 must give the bytes' FNV-1a, as the slow one did.
        var expected: UInt64 = 0xcbf29ce484222325
        for b in "requests_total".utf8 { expected = (expected ^ UInt64(b)) &* 0x100000001b3 }
        expected = (expected ^ 0xFF) &* 0x100000001b3
        #expect(GatewayMetrics.Key("requests_total").value == expected)
    }
}
