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
        protobuf(resource: resource, scope: scope) { sink in for s in spans { s.emit(into: &sink) } }
    }

    /// An export request whose spans `body` tells the sink (a batch of
    /// `FinishedTrace`s, straight to bytes).
    public static func protobuf(resource: [SpanAttribute], scope: Scope, capacity: Int = 4096, _ body: (inout ProtobufSpanSink) -> Void) -> [UInt8] {
        var r = ProtoWriter(capacity: capacity)
        r.message(1) { rs in
            rs.message(1) { res in for a in resource { attribute(1, a.key, a.value, &res) } }
            rs.message(2) { ss in
                ss.message(1) { sc in sc.string(1, scope.name); sc.string(2, scope.version) }
                var sink = ProtobufSpanSink(ss)
                body(&sink)
            }
        }
        return r.bytes
    }

    /// `field` = a `KeyValue` (its tag and length, then the message).
    static func attribute(_ field: Int, _ key: String, _ value: SpanAttribute.Value, _ w: inout ProtoWriter) {
        w.tag(field, 2)
        keyValue(key, value, &w)
    }

    static func attribute(_ field: Int, _ a: SpanAttribute, _ w: inout ProtoWriter) { attribute(field, a.key, a.value, &w) }

    /// A `KeyValue` written with its lengths computed first (no nested
    /// buffer, no insert: with them an attribute cost ~900 instructions,
    /// callgrind, bench 2f).
    static func keyValue(_ key: String, _ value: SpanAttribute.Value, _ w: inout ProtoWriter) {
        let k = key.utf8.count
        let any = anyValueSize(value)
        w.raw(UInt64(1 + ProtoWriter.varintSize(UInt64(k)) + k + 1 + ProtoWriter.varintSize(UInt64(any)) + any))
        w.string(1, key)
        w.tag(2, 2)
        w.raw(UInt64(any))
        anyValue(value, &w)
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
/// most of the encoding's time: perf, bench 2f).
struct ProtoWriter {
    /// The bytes, in a buffer of its own (appending to an `[UInt8]` checked
    /// its uniqueness and capacity per append: most of the encoding's
    /// instructions, callgrind).
    final class Storage {
        var base: UnsafeMutablePointer<UInt8>
        var count = 0
        var capacity: Int
        init(capacity: Int) {
            self.capacity = max(64, capacity)
            base = .allocate(capacity: self.capacity)
        }
        deinit { base.deallocate() }

        @inline(__always) func reserve(_ n: Int) {
            if count + n > capacity { grow(n) }
        }

        @inline(never) func grow(_ n: Int) {
            var c = capacity * 2
            while count + n > c { c *= 2 }
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
            grown.update(from: base, count: count)
            base.deallocate()
            (base, capacity) = (grown, c)
        }

        @inline(__always) func append(_ b: UInt8) {
            reserve(1)
            base[count] = b
            count += 1
        }

        @inline(__always) func append(_ raw: UnsafeRawBufferPointer) {
            let n = raw.count
            guard n > 0 else { return }
            reserve(n)
            if n <= 16 {
                // Keys, ids and short values: a loop beats a call to memcpy (~35 instructions, callgrind).
                let to = base + count
                for k in 0..<n { to[k] = raw[k] }
            } else {
                UnsafeMutableRawPointer(base + count).copyMemory(from: raw.baseAddress!, byteCount: n)
            }
            count += n
        }

        /// `raw` put at `offset`, what follows moved up.
        func insert(_ raw: UnsafeRawBufferPointer, at offset: Int) {
            reserve(raw.count)
            (base + offset + raw.count).update(from: base + offset, count: count - offset)
            UnsafeMutableRawPointer(base + offset).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
            count += raw.count
        }
    }

    private let out: Storage

    init(capacity: Int = 0) { out = Storage(capacity: capacity) }

    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: out.base, count: out.count)) }

    mutating func append(_ raw: UnsafeRawBufferPointer) { out.append(raw) }
    var count: Int { out.count }

    @inline(__always) mutating func tag(_ field: Int, _ wire: Int) { raw(UInt64(field << 3 | wire)) }

    /// A varint, written straight into the buffer (room for the longest
    /// reserved first). Through a byte tuple and an append it was ~39
    /// instructions a call and a fifth of an export's (callgrind, bench 2f).
    @inline(__always) mutating func raw(_ v: UInt64) {
        out.reserve(10)
        let base = out.base
        var i = out.count
        var v = v
        while v >= 0x80 {
            base[i] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            i += 1
        }
        base[i] = UInt8(truncatingIfNeeded: v)
        out.count = i + 1
    }

    mutating func varint(_ field: Int, _ v: UInt64, always: Bool = false) {
        guard v != 0 || always else { return }
        tag(field, 0); raw(v)
    }

    mutating func fixed64(_ field: Int, _ v: UInt64, always: Bool = false) {
        guard v != 0 || always else { return }
        tag(field, 1)
        withUnsafeBytes(of: v.littleEndian) { out.append($0) }
    }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        guard v != 0 else { return }
        tag(field, 5)
        withUnsafeBytes(of: v.littleEndian) { out.append($0) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        tag(field, 2); raw(UInt64(b.count)); b.withUnsafeBytes { out.append($0) }
    }

    /// Eight bytes of an id, big-endian (trace and span ids are byte strings).
    mutating func id(_ field: Int, _ v: UInt64) {
        tag(field, 2); raw(8); bigEndian(v)
    }

    mutating func id(_ field: Int, _ high: UInt64, _ low: UInt64) {
        tag(field, 2); raw(16); bigEndian(high); bigEndian(low)
    }

    private mutating func bigEndian(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { out.append($0) }
    }

    mutating func string(_ field: Int, _ s: String, always: Bool = false) {
        guard !s.isEmpty || always else { return }
        tag(field, 2)
        raw(UInt64(s.utf8.count))
        utf8(s)
    }

    /// A string field written from its parts.
    mutating func name(_ field: Int, _ n: SpanName) {
        let count = n.utf8Count
        guard count > 0 else { return }
        tag(field, 2)
        raw(UInt64(count))
        utf8(n.first)
        if !n.second.isEmpty { utf8(n.second) }
        if !n.third.isEmpty { utf8(n.third) }
    }

    /// A string's bytes, no tag or length.
    private mutating func utf8(_ s: String) {
        let lent: Void? = s.utf8.withContiguousStorageIfAvailable { out.append(UnsafeRawBufferPointer($0)) }
        guard lent == nil else { return }
        var s = s
        s.withUTF8 { out.append(UnsafeRawBufferPointer($0)) }
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
        let start = out.count
        body(&self)
        prefixLength(from: start)
    }

    /// Puts the length of what was written since `start` in front of it, as a varint.
    mutating func prefixLength(from start: Int) {
        var n = UInt64(out.count - start)
        var len: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
        var k = 0
        withUnsafeMutableBytes(of: &len) { p in
            repeat {
                p[k] = UInt8(n & 0x7F) | (n >= 0x80 ? 0x80 : 0)
                n >>= 7
                k += 1
            } while n > 0
            out.insert(UnsafeRawBufferPointer(rebasing: p[0..<k]), at: start)
        }
    }
}

/// Spans written as `ScopeSpans.spans` (field 2) into the writer of an
/// export request, straight from what `RequestTrace.emit` tells it.
public struct ProtobufSpanSink: SpanSink {
    var w: ProtoWriter
    private var start = 0
    private var flags: UInt32 = 0

    /// The last attempt URL read, and its parts (one upstream serves a
    /// batch: parsing each URL again was ~1,500 instructions a span, callgrind).
    private var lastServer: (url: String, parts: (host: String, port: Int, path: String)?)?

    /// Shares `w`'s buffer: what it writes lands in that message.
    init(_ w: ProtoWriter) { self.w = w }

    public mutating func server(of url: String) -> (host: String, port: Int, path: String)? {
        if let last = lastServer, last.url == url { return last.parts }
        let parts = RequestTrace.server(of: url)
        lastServer = (url, parts)
        return parts
    }

    public mutating func begin(_ h: SpanHead) {
        w.tag(2, 2)
        start = w.count
        flags = UInt32(h.flags) | 0x100 | (h.kind == .server && h.parentSpanID != 0 ? 0x200 : 0)
        w.id(1, h.traceHigh, h.traceLow)
        w.id(2, h.spanID)
        if !h.traceState.isEmpty { w.string(3, h.traceState) }
        if h.parentSpanID != 0 { w.id(4, h.parentSpanID) }
        w.name(5, h.nameParts)
        w.varint(6, UInt64(h.kind.rawValue))
        w.fixed64(7, h.startUnixNanos)
        w.fixed64(8, h.endUnixNanos)
    }

    public mutating func attribute(_ key: StaticString, _ value: SpanAttribute.Value) {
        // Tag, lengths and the key's bytes straight from the literal.
        let k = key.utf8CodeUnitCount
        let any = OTLPEncoding.anyValueSize(value)
        w.tag(9, 2)
        w.raw(UInt64(1 + ProtoWriter.varintSize(UInt64(k)) + k + 1 + ProtoWriter.varintSize(UInt64(any)) + any))
        w.tag(1, 2)
        w.raw(UInt64(k))
        w.append(UnsafeRawBufferPointer(start: key.utf8Start, count: k))
        w.tag(2, 2)
        w.raw(UInt64(any))
        OTLPEncoding.anyValue(value, &w)
    }

    public mutating func attribute(named key: String, _ value: SpanAttribute.Value) {
        OTLPEncoding.attribute(9, key, value, &w)
    }

    public mutating func end(error: String?) {
        if let error { w.message(15) { st in st.string(2, error); st.varint(3, 2) } }
        w.fixed32(16, flags)
        w.prefixLength(from: start)
    }
}
