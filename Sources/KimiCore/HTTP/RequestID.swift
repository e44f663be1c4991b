import Synchronization

/// Request ids: the client's `X-Request-Id` when it is short and plain,
/// otherwise a fresh random one.
public enum RequestID {
    public static func from(_ header: String?) -> String {
        if let h = header, (1...64).contains(h.utf8.count),
           h.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E })
        {
            return h
        }
        return fresh()
    }

    /// splitmix64 over a randomly seeded counter: unique per process, no
    /// syscall per request (getrandom costs more than the rest of /health)
    /// and no lock (a preempted lock holder stalls every worker thread).
    private static let counter: Atomic<UInt64> = {
        var g = SystemRandomNumberGenerator()
        return Atomic(g.next())
    }()
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    public static func fresh() -> String { fresh(after: 0, digits: 0) }

    /// The next value of the same sequence as a number (trace and span ids).
    public static func random64() -> UInt64 {
        var z = counter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `digits` hex digits of `prefix` (most significant first), then a
    /// fresh id, in one String (the usage ledger's time-sorted record ids).
    public static func fresh(after prefix: UInt64, digits: Int) -> String {
        let z = random64()
        return String(unsafeUninitializedCapacity: digits + 16) { buf in
            for i in 0..<digits { buf[i] = hex[Int((prefix >> UInt64((digits - 1 - i) * 4)) & 0xF)] }
            for i in 0..<16 { buf[digits + i] = hex[Int((z >> UInt64(60 - i * 4)) & 0xF)] }
            return digits + 16
        }
    }
}
