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
    public var traceparent: String {
        String(unsafeUninitializedCapacity: 55) { b in
            var i = 0
            func put(_ v: UInt64, digits: Int) {
                for d in stride(from: digits - 1, through: 0, by: -1) {
                    b[i] = Self.hex[Int((v >> UInt64(d * 4)) & 0xF)]
                    i += 1
                }
            }
            put(0, digits: 2); b[i] = 0x2D; i += 1
            put(traceHigh, digits: 16); put(traceLow, digits: 16); b[i] = 0x2D; i += 1
            put(spanID, digits: 16); b[i] = 0x2D; i += 1
            put(UInt64(flags), digits: 2)
            return i
        }
    }

    /// The trace id as 32 lowercase hex digits (OTLP/JSON's spelling).
    public var traceIDHex: String { Self.hex(traceHigh) + Self.hex(traceLow) }

    public static func hex(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { b in
            for i in 0..<16 { b[i] = hex[Int((v >> UInt64(60 - i * 4)) & 0xF)] }
            return 16
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

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
