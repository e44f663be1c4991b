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
    public static func iso8601(micros: Int64 = wallMicros()) -> String {
        var t = time_t(micros / 1_000_000)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let ms = Int32((micros / 1000) % 1000)
        return "\(p(tmv.tm_year + 1900, 4))-\(p(tmv.tm_mon + 1, 2))-\(p(tmv.tm_mday, 2))T\(p(tmv.tm_hour, 2)):\(p(tmv.tm_min, 2)):\(p(tmv.tm_sec, 2)).\(p(ms, 3))Z"
    }
}
