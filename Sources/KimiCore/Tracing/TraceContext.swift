/// A W3C trace context (Trace Context Level 1, §3.2 `traceparent`, §3.3
/// `tracestate`): the trace a request belongs to, the span that is its
/// parent, whether the parent sampled it, and the vendors' state passed on
/// unread.
public struct TraceContext: Sendable, Equatable {
    /// The 16-byte trace id as two big-endian halves; never both zero.
    public var traceHigh: UInt64
    public var traceLow: UInt64
    /// The parent's span id; never zero.
    public var spanID: UInt64
    /// Bit 0: the parent sampled this trace.
    public var flags: UInt8
    /// `tracestate`, passed on as it came (at most 512 characters, §3.3.1.1), or "".
    public var state: String

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, flags: UInt8, state: String = "") {
        (self.traceHigh, self.traceLow, self.spanID, self.flags, self.state) = (traceHigh, traceLow, spanID, flags, state)
    }

    public var sampled: Bool { flags & 1 == 1 }

    /// The header's value: `00-<trace id>-<span id>-<flags>`, lowercase hex.
    /// Digits by arithmetic, not a table (a static array's accessor and
    /// bounds checks per digit were ~4,000 instructions a request, callgrind).
    public var traceparent: String {
        String(unsafeUninitializedCapacity: 55) { b in
            b[0] = 0x30; b[1] = 0x30; b[2] = 0x2D
            Self.putHex(traceHigh, into: b, at: 3, digits: 16)
            Self.putHex(traceLow, into: b, at: 19, digits: 16)
            b[35] = 0x2D
            Self.putHex(spanID, into: b, at: 36, digits: 16)
            b[52] = 0x2D
            Self.putHex(UInt64(flags), into: b, at: 53, digits: 2)
            return 55
        }
    }

    /// The trace id as 32 lowercase hex digits (OTLP/JSON's spelling).
    public var traceIDHex: String { Self.hex(traceHigh) + Self.hex(traceLow) }

    public static func hex(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { b in
            putHex(v, into: b, at: 0, digits: 16)
            return 16
        }
    }

    /// The low `digits` hex digits of `v`, most significant first, at `b[at...]`.
    @inline(__always) static func putHex(_ v: UInt64, into b: UnsafeMutableBufferPointer<UInt8>, at: Int, digits: Int) {
        precondition(at >= 0 && at + digits <= b.count)
        let p = b.baseAddress! + at
        var v = v, i = digits
        while i > 0 {
            i -= 1
            let d = UInt8(truncatingIfNeeded: v & 0xF)
            p[i] = d < 10 ? 0x30 &+ d : 0x57 &+ d
            v >>= 4
        }
    }

    /// The context a request's headers carry, or nil when `traceparent` is
    /// absent or invalid (§3.2.2: then a new trace starts and `tracestate`
    /// is dropped). Version 00 must be exactly 55 characters; a higher
    /// version is read by its first four fields (§3.2.4: "parse the
    /// version-00 fields, ignore what follows"); `ff` is invalid. All-zero
    /// trace or span ids are invalid; hex must be lowercase.
    public static func parse(traceparent: String?, tracestate: String?) -> TraceContext? {
        guard let raw = traceparent?.trimmingSpaces() else { return nil }
        let u = Array(raw.utf8)
        guard u.count >= 55, u[2] == 0x2D, u[35] == 0x2D, u[52] == 0x2D else { return nil }
        guard let version = number(u[0..<2]), version != 0xFF else { return nil }
        if version == 0 { guard u.count == 55 else { return nil } } else if u.count > 55, u[55] != 0x2D { return nil }
        guard let hi = number(u[3..<19]), let lo = number(u[19..<35]), hi | lo != 0,
              let span = number(u[36..<52]), span != 0, let flags = number(u[53..<55]) else { return nil }
        var state = tracestate?.trimmingSpaces() ?? ""
        if state.utf8.count > 512 || !HeaderSafety.isSafe(state) { state = "" }
        return TraceContext(traceHigh: hi, traceLow: lo, spanID: span, flags: UInt8(flags), state: state)
    }

    /// Lowercase hex digits as a number; nil for anything else.
    private static func number(_ digits: ArraySlice<UInt8>) -> UInt64? {
        var v: UInt64 = 0
        for c in digits {
            switch c {
            case 0x30...0x39: v = v << 4 | UInt64(c - 0x30)
            case 0x61...0x66: v = v << 4 | UInt64(c - 0x61 + 10)
            default: return nil
            }
        }
        return v
    }
}
