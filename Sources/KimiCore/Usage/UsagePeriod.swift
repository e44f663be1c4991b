/// The budget periods: the UTC calendar day and month holding
/// an instant, as half-open ranges of Unix milliseconds. Civil-date
/// arithmetic after Howard Hinnant's `days_from_civil` / `civil_from_days`
/// (proleptic Gregorian, exact for any Int64 day count we meet).
public struct UsagePeriod: Equatable, Sendable {
    /// Unix milliseconds, `from` inclusive, `to` exclusive.
    public let from: Int64
    public let to: Int64

    static let dayMs: Int64 = 86_400_000

    public static func day(containing ms: Int64) -> UsagePeriod {
        let start = floorDiv(ms, dayMs) * dayMs
        return UsagePeriod(from: start, to: start + dayMs)
    }

    public static func month(containing ms: Int64) -> UsagePeriod {
        let (y, m, _) = civil(days: floorDiv(ms, dayMs))
        let (ny, nm) = m == 12 ? (y + 1, 1) : (y, m + 1)
        return UsagePeriod(from: days(year: y, month: m, day: 1) * dayMs, to: days(year: ny, month: nm, day: 1) * dayMs)
    }

    /// Days since 1970-01-01 of a civil date.
    public static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = Int64((month + 9) % 12)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    public static func civil(days z0: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = Int(doy - (153 * mp + 2) / 5 + 1)
        let m = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// `YYYY-MM-DD` of the UTC day holding `ms`.
    public static func dayLabel(_ ms: Int64) -> String {
        let (y, m, d) = civil(days: floorDiv(ms, dayMs))
        return "\(y)-\(m < 10 ? "0" : "")\(m)-\(d < 10 ? "0" : "")\(d)"
    }

    /// ISO 8601 UTC (`2026-11-22T08:00:00Z`) of `ms`, seconds precision.
    public static func iso(_ ms: Int64) -> String {
        let s = floorDiv(ms, 1000) - floorDiv(ms, dayMs) * 86_400
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(dayLabel(ms))T\(two(s / 3600)):\(two(s / 60 % 60)):\(two(s % 60))Z"
    }

    /// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS][.fff](Z|±HH:MM)` into Unix ms.
    public static func parseISO(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func num(_ r: Range<Int>) -> Int64? {
            guard r.upperBound <= b.count, !r.isEmpty else { return nil }
            var v: Int64 = 0
            for c in b[r] {
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            return v
        }
        guard b.count >= 10, b[4] == 0x2D, b[7] == 0x2D, let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10),
              (1...12).contains(mo), (1...31).contains(d) else { return nil }
        var ms = days(year: y, month: Int(mo), day: Int(d)) * dayMs
        if b.count == 10 { return ms }
        guard b[10] == 0x54 || b[10] == 0x20, b.count >= 16, b[13] == 0x3A, let h = num(11..<13), let mi = num(14..<16),
              h < 24, mi < 60 else { return nil }
        ms += (h * 3600 + mi * 60) * 1000
        var i = 16
        if i < b.count, b[i] == 0x3A {
            guard let s = num(i + 1..<i + 3), s < 61 else { return nil }
            ms += s * 1000
            i += 3
            if i < b.count, b[i] == 0x2E {
                var j = i + 1
                var frac: Int64 = 0
                var digits = 0
                while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                    if digits < 3 { frac = frac * 10 + Int64(b[j] - 0x30); digits += 1 }
                    j += 1
                }
                guard j > i + 1 else { return nil }
                while digits < 3 { frac *= 10; digits += 1 }
                ms += frac
                i = j
            }
        }
        if i == b.count { return ms } // no zone: UTC
        if b[i] == 0x5A, i + 1 == b.count { return ms }
        guard b[i] == 0x2B || b[i] == 0x2D, i + 6 == b.count, b[i + 3] == 0x3A, let oh = num(i + 1..<i + 3),
              let om = num(i + 4..<i + 6), oh < 24, om < 60 else { return nil }
        let offset = (oh * 3600 + om * 60) * 1000
        return b[i] == 0x2B ? ms - offset : ms + offset
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
