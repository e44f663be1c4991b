#if canImport(Glibc)
import Glibc
#endif

/// Wall and monotonic time without Foundation.
public enum Clock {
    /// Monotonic nanoseconds (CLOCK_MONOTONIC): durations, timeouts.
    @inline(__always) public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Wall-clock microseconds since the Unix epoch (CLOCK_REALTIME): shared
    /// state between processes, timestamps.
    @inline(__always) public static func wallMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    public static func unixSeconds() -> Int { Int(wallMicros() / 1_000_000) }

    /// ISO-8601 UTC with milliseconds, as JavaScript's `toISOString()`.
    /// Written digit by digit: it is on every log line.
    public static func iso8601(micros: Int64 = wallMicros()) -> String {
        var t = time_t(micros / 1_000_000)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        let ms = Int((micros / 1000) % 1000)
        return String(unsafeUninitializedCapacity: 24) { buf in
            func put(_ v: Int, _ width: Int, _ at: Int) {
                var v = v
                for k in stride(from: at + width - 1, through: at, by: -1) { buf[k] = UInt8(48 + v % 10); v /= 10 }
            }
            put(Int(tmv.tm_year) + 1900, 4, 0); buf[4] = 0x2D
            put(Int(tmv.tm_mon) + 1, 2, 5); buf[7] = 0x2D
            put(Int(tmv.tm_mday), 2, 8); buf[10] = 0x54
            put(Int(tmv.tm_hour), 2, 11); buf[13] = 0x3A
            put(Int(tmv.tm_min), 2, 14); buf[16] = 0x3A
            put(Int(tmv.tm_sec), 2, 17); buf[19] = 0x2E
            put(ms, 3, 20); buf[23] = 0x5A
            return 24
        }
    }
}
