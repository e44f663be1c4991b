/// One finished span, as OTLP carries it (`opentelemetry/proto/trace/v1/trace.proto`):
/// its head (ids, name, kind, times; read through as `span.name`…), its
/// attributes and its status.
@dynamicMemberLookup
public struct SpanData: Sendable, Equatable {
    /// `Span.SpanKind`'s numbers.
    public enum Kind: Int, Sendable { case server = 2, client = 3 }

    public var head: SpanHead
    public var attributes: [SpanAttribute]
    /// Status ERROR with this message; nil: UNSET (the semantic
    /// conventions leave a success's status unset).
    public var error: String?

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, parentSpanID: UInt64, traceState: String = "", flags: UInt8 = 1,
                name: String, kind: Kind, startUnixNanos: UInt64, endUnixNanos: UInt64, attributes: [SpanAttribute], error: String? = nil)
    {
        head = SpanHead(traceHigh: traceHigh, traceLow: traceLow, spanID: spanID, parentSpanID: parentSpanID, traceState: traceState, flags: flags,
                        name: SpanName(name), kind: kind, startUnixNanos: startUnixNanos, endUnixNanos: endUnixNanos)
        (self.attributes, self.error) = (attributes, error)
    }

    public init(head: SpanHead, attributes: [SpanAttribute], error: String?) {
        (self.head, self.attributes, self.error) = (head, attributes, error)
    }

    public subscript<T>(dynamicMember field: KeyPath<SpanHead, T>) -> T { head[keyPath: field] }

    public func attribute(_ key: String) -> SpanAttribute.Value? { attributes.first { $0.key == key }?.value }
}

/// An attribute of a span or of the resource (`common.proto`'s `KeyValue`).
public struct SpanAttribute: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int)
        case double(Double)
        case bool(Bool)
        case strings([String])
    }

    public let key: String
    public let value: Value

    public init(_ key: String, _ value: Value) { (self.key, self.value) = (key, value) }
    public static func string(_ k: String, _ v: String) -> SpanAttribute { SpanAttribute(k, .string(v)) }
    public static func int(_ k: String, _ v: Int) -> SpanAttribute { SpanAttribute(k, .int(v)) }
}

/// What a span is before its attributes: ids, name, kind, times.
public struct SpanHead: Sendable, Equatable {
    /// The 16-byte trace id as two big-endian halves.
    public var traceHigh: UInt64
    public var traceLow: UInt64
    public var spanID: UInt64
    /// 0: a root span.
    public var parentSpanID: UInt64
    public var traceState: String
    /// W3C trace flags (bit 0: sampled), OTLP's `Span.flags` low byte.
    public var flags: UInt8
    /// The name as its parts (`chat ` and the model; the method, ` ` and the
    /// route): the protobuf writer writes them one after another, with no
    /// joined copy (joining was ~2,400 instructions a request, callgrind).
    public var nameParts: SpanName
    public var name: String { nameParts.joined }
    public var kind: SpanData.Kind
    public var startUnixNanos: UInt64
    public var endUnixNanos: UInt64

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, parentSpanID: UInt64, traceState: String, flags: UInt8,
                name: SpanName, kind: SpanData.Kind, startUnixNanos: UInt64, endUnixNanos: UInt64)
    {
        (self.traceHigh, self.traceLow, self.spanID, self.parentSpanID, self.traceState, self.flags) = (traceHigh, traceLow, spanID, parentSpanID, traceState, flags)
        (nameParts, self.kind, self.startUnixNanos, self.endUnixNanos) = (name, kind, startUnixNanos, endUnixNanos)
    }
}

/// A span's name: up to three strings, read as one.
public struct SpanName: Sendable, Equatable {
    public var first: String
    public var second: String
    public var third: String
    public init(_ first: String, _ second: String = "", _ third: String = "") { (self.first, self.second, self.third) = (first, second, third) }
    public var joined: String { first + second + third }
    public var utf8Count: Int { first.utf8.count + second.utf8.count + third.utf8.count }
    public static func == (a: SpanName, b: SpanName) -> Bool { a.joined == b.joined }
}

/// Where a span's parts go as they are produced (`RequestTrace.emit`):
/// into `SpanData` values (tests, OTLP/JSON), or straight into protobuf
/// bytes (`ProtobufSpanSink`: no attribute array, no `SpanData`, the
/// exporter's common path).
public protocol SpanSink {
    mutating func begin(_ head: SpanHead)
    /// An attribute the gateway names (a literal: written from its bytes).
    mutating func attribute(_ key: StaticString, _ value: SpanAttribute.Value)
    /// An attribute named at run time (a `SpanData` replayed).
    mutating func attribute(named key: String, _ value: SpanAttribute.Value)
    mutating func end(error: String?)
    /// The host, port and path of an attempt's URL (`RequestTrace.server(of:)`;
    /// a sink may remember the last, as a batch's attempts share their upstream).
    mutating func server(of url: String) -> (host: String, port: Int, path: String)?
}

extension SpanSink {
    public mutating func server(of url: String) -> (host: String, port: Int, path: String)? { RequestTrace.server(of: url) }
}

/// Collects `SpanData` values.
public struct SpanDataSink: SpanSink {
    public private(set) var spans: [SpanData] = []
    private var head: SpanHead?
    private var attributes: [SpanAttribute] = []

    public init() {}

    public mutating func begin(_ head: SpanHead) {
        self.head = head
        attributes = []
        attributes.reserveCapacity(24)
    }

    public mutating func attribute(_ key: StaticString, _ value: SpanAttribute.Value) { attributes.append(SpanAttribute(key.description, value)) }
    public mutating func attribute(named key: String, _ value: SpanAttribute.Value) { attributes.append(SpanAttribute(key, value)) }

    public mutating func end(error: String?) {
        guard let h = head else { return }
        spans.append(SpanData(head: h, attributes: attributes, error: error))
        head = nil
    }
}

extension SpanData {
    /// This span, told to a sink.
    public func emit<S: SpanSink>(into sink: inout S) {
        sink.begin(head)
        for a in attributes { sink.attribute(named: a.key, a.value) }
        sink.end(error: error)
    }
}
