/// An OTLP `ExportTraceServiceRequest` (opentelemetry-proto v1:
/// `collector/trace/v1/trace_service.proto`, `trace/v1/trace.proto`,
/// `common/v1/common.proto`) for a batch of spans under one resource, in
/// either encoding OTLP/HTTP carries: binary protobuf, or the JSON mapping
/// the OTLP spec defines (protobuf's JSON with lowerCamelCase names, trace
/// and span ids as hex — not base64 — and enums as integers).
/// Written by hand: the messages are small, fixed and append-only.
public enum OTLPEncoding {
    public enum Format: String, Sendable, CaseIterable {
        case protobuf = "http/protobuf"
        case json = "http/json"

        public var contentType: String { self == .protobuf ? "application/x-protobuf" : "application/json" }
    }

    /// `InstrumentationScope` of every span.
    public struct Scope: Sendable {
        public var name: String
        public var version: String
        public init(name: String, version: String) { (self.name, self.version) = (name, version) }
    }

    /// `Span.flags`: the W3C flags, and bits 8–9 saying whether the parent is remote (trace.proto `SpanFlags`).
    static func spanFlags(_ s: SpanData) -> UInt32 {
        UInt32(s.flags) | 0x100 | (s.kind == .server && s.parentSpanID != 0 ? 0x200 : 0)
    }

    public static func encode(_ spans: [SpanData], resource: [SpanAttribute], scope: Scope, as format: Format) -> [UInt8] {
        format == .protobuf ? protobuf(spans, resource: resource, scope: scope) : json(spans, resource: resource, scope: scope)
    }

    // MARK: protobuf

    public static func protobuf(_ spans: [SpanData], resource: [SpanAttribute], scope: Scope) -> [UInt8] {
        var r = ProtoWriter(capacity: 512 + spans.count * 512)
        r.message(1) { rs in
            rs.message(1) { res in for a in resource { attribute(1, a, &res) } }
            rs.message(2) { ss in
                ss.message(1) { sc in sc.string(1, scope.name); sc.string(2, scope.version) }
                for s in spans { ss.message(2) { span(s, &$0) } }
            }
        }
        return r.bytes
    }

    static func span(_ s: SpanData, _ w: inout ProtoWriter) {
        w.id(1, s.traceHigh, s.traceLow)
        w.id(2, s.spanID)
        if !s.traceState.isEmpty { w.string(3, s.traceState) }
        if s.parentSpanID != 0 { w.id(4, s.parentSpanID) }
        w.string(5, s.name)
        w.varint(6, UInt64(s.kind.rawValue))
        w.fixed64(7, s.startUnixNanos)
        w.fixed64(8, s.endUnixNanos)
        for a in s.attributes { attribute(9, a, &w) }
        if let e = s.error { w.message(15) { st in st.string(2, e); st.varint(3, 2) } }
        w.fixed32(16, spanFlags(s))
    }

    /// A `KeyValue` written with its lengths computed first (no nested
    /// buffer, no insert: with them an attribute cost ~900 instructions,
    /// callgrind, bench 2e).
    static func keyValue(_ a: SpanAttribute, _ w: inout ProtoWriter) {
        let key = a.key.utf8.count
        let any = anyValueSize(a.value)
        w.raw(UInt64(1 + ProtoWriter.varintSize(UInt64(key)) + key + 1 + ProtoWriter.varintSize(UInt64(any)) + any))
        w.string(1, a.key)
        w.tag(2, 2)
        w.raw(UInt64(any))
        anyValue(a.value, &w)
    }

    /// `field` = a `KeyValue` (its tag and length, then the message).
    static func attribute(_ field: Int, _ a: SpanAttribute, _ w: inout ProtoWriter) {
        w.tag(field, 2)
        keyValue(a, &w)
    }

    static func anyValueSize(_ v: SpanAttribute.Value) -> Int {
        func str(_ n: Int) -> Int { 1 + ProtoWriter.varintSize(UInt64(n)) + n }
        switch v {
        case let .string(s): return str(s.utf8.count)
        case .bool: return 2
        case let .int(i): return 1 + ProtoWriter.varintSize(UInt64(bitPattern: Int64(i)))
        case .double: return 9
        case let .strings(items): return str(arrayBody(items))
        }
    }

    /// An `ArrayValue` of strings: each an `AnyValue` (field 1) holding a `string_value`.
    static func arrayBody(_ items: [String]) -> Int {
        items.reduce(0) { sum, s in
            let inner = 1 + ProtoWriter.varintSize(UInt64(s.utf8.count)) + s.utf8.count
            return sum + 1 + ProtoWriter.varintSize(UInt64(inner)) + inner
        }
    }

    static func anyValue(_ v: SpanAttribute.Value, _ w: inout ProtoWriter) {
        switch v {
        case let .string(s): w.string(1, s, always: true)
        case let .bool(b): w.varint(2, b ? 1 : 0, always: true)
        case let .int(i): w.varint(3, UInt64(bitPattern: Int64(i)), always: true)
        case let .double(d): w.fixed64(4, d.bitPattern, always: true)
        case let .strings(items):
            w.tag(5, 2)
            w.raw(UInt64(arrayBody(items)))
            for s in items {
                let inner = 1 + ProtoWriter.varintSize(UInt64(s.utf8.count)) + s.utf8.count
                w.tag(1, 2); w.raw(UInt64(inner))
                w.string(1, s, always: true)
            }
        }
    }

    // MARK: JSON

    public static func json(_ spans: [SpanData], resource: [SpanAttribute], scope: Scope) -> [UInt8] {
        func attrs(_ list: [SpanAttribute]) -> JSON { .array(list.map { .object([("key", .string($0.key)), ("value", value($0.value))]) }) }
        let encoded: [JSON] = spans.map { s in
            var o: [(String, JSON)] = [("traceId", .string(TraceContext.hex(s.traceHigh) + TraceContext.hex(s.traceLow))),
                                       ("spanId", .string(TraceContext.hex(s.spanID)))]
            if !s.traceState.isEmpty { o.append(("traceState", .string(s.traceState))) }
            if s.parentSpanID != 0 { o.append(("parentSpanId", .string(TraceContext.hex(s.parentSpanID)))) }
            o += [("flags", .number(Int(spanFlags(s)))), ("name", .string(s.name)), ("kind", .number(s.kind.rawValue)),
                  ("startTimeUnixNano", .string(String(s.startUnixNanos))), ("endTimeUnixNano", .string(String(s.endUnixNanos))),
                  ("attributes", attrs(s.attributes))]
            if let e = s.error { o.append(("status", .object([("message", .string(e)), ("code", .number(2))]))) }
            return .object(o)
        }
        let request: JSON = .object([("resourceSpans", .array([.object([
            ("resource", .object([("attributes", attrs(resource))])),
            ("scopeSpans", .array([.object([("scope", .object([("name", .string(scope.name)), ("version", .string(scope.version))])),
                                            ("spans", .array(encoded))])])),
        ])]))])
        return request.serializedBytes()
    }

    static func value(_ v: SpanAttribute.Value) -> JSON {
        switch v {
        case let .string(s): return .object([("stringValue", .string(s))])
        case let .bool(b): return .object([("boolValue", .bool(b))])
        case let .int(i): return .object([("intValue", .string(String(i)))])
        case let .double(d): return .object([("doubleValue", d.isFinite ? .number(d) : .string(d.isNaN ? "NaN" : (d > 0 ? "Infinity" : "-Infinity")))])
        case let .strings(items): return .object([("arrayValue", .object([("values", .array(items.map { value(.string($0)) }))]))])
        }
    }
}

/// Protocol Buffers' wire format (protobuf.dev "Encoding"): tags, varints,
/// little-endian fixed fields, length-delimited strings and messages.
/// Defaults (0, "") are left out as proto3 does, unless `always`. One
/// buffer for the whole request: a nested message is written in place and
/// its length put in front of it after (a buffer per nested message was
/// most of the encoding's time: perf, bench 2e).
struct ProtoWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func tag(_ field: Int, _ wire: Int) { raw(UInt64(field << 3 | wire)) }

    /// A varint, appended in one piece (an append a byte was most of the
    /// encoding's instructions: callgrind).
    mutating func raw(_ v: UInt64) {
        if v < 0x80 { bytes.append(UInt8(v)); return }
        var v = v
        var out: (UInt64, UInt16) = (0, 0)
        let n = withUnsafeMutableBytes(of: &out) { p -> Int in
            var k = 0
            while v >= 0x80 { p[k] = UInt8(v & 0x7F) | 0x80; v >>= 7; k += 1 }
            p[k] = UInt8(v)
            return k + 1
        }
        withUnsafeBytes(of: &out) { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    mutating func varint(_ field: Int, _ v: UInt64, always: Bool = false) {
        guard v != 0 || always else { return }
        tag(field, 0); raw(v)
    }

    mutating func fixed64(_ field: Int, _ v: UInt64, always: Bool = false) {
        guard v != 0 || always else { return }
        tag(field, 1)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        guard v != 0 else { return }
        tag(field, 5)
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        tag(field, 2); raw(UInt64(b.count)); bytes.append(contentsOf: b)
    }

    /// Eight bytes of an id, big-endian (trace and span ids are byte strings).
    mutating func id(_ field: Int, _ v: UInt64) {
        tag(field, 2); raw(8); bigEndian(v)
    }

    mutating func id(_ field: Int, _ high: UInt64, _ low: UInt64) {
        tag(field, 2); raw(16); bigEndian(high); bigEndian(low)
    }

    private mutating func bigEndian(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ field: Int, _ s: String, always: Bool = false) {
        guard !s.isEmpty || always else { return }
        tag(field, 2)
        var s = s
        s.withUTF8 { u in
            raw(UInt64(u.count))
            bytes.append(contentsOf: u)
        }
    }

    static func varintSize(_ v: UInt64) -> Int {
        var v = v, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// A nested message, its length known once it is written: the body
    /// goes in place, then its length is inserted before it (one byte, the
    /// common case, or more).
    mutating func message(_ field: Int, _ body: (inout ProtoWriter) -> Void) {
        tag(field, 2)
        let start = bytes.count
        body(&self)
        var n = UInt64(bytes.count - start)
        var len: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
        var k = 0
        withUnsafeMutableBytes(of: &len) { p in
            repeat {
                p[k] = UInt8(n & 0x7F) | (n >= 0x80 ? 0x80 : 0)
                n >>= 7
                k += 1
            } while n > 0
            bytes.insert(contentsOf: UnsafeRawBufferPointer(rebasing: p[0..<k]), at: start)
        }
    }
}
