/// An incremental parser for `text/event-stream` (WHATWG HTML §9.2.6):
/// bytes arrive in arbitrary pieces (an event may be split across reads,
/// even inside a CRLF); lines end in LF, CR or CRLF; `:` lines are comments;
/// several `data:` lines join with LF; an empty line dispatches the event.
public struct SSEParser {
    public struct Event: Equatable, Sendable {
        public var event: String?
        public var data: String
        public var id: String?
    }

    private var line: [UInt8] = []
    private var lastWasCR = false
    private var dataLines: [String] = []
    private var hasData = false
    private var eventName: String?
    private var lastID: String?
    /// Comments seen (`: keep-alive`), for callers that want to forward them.
    public private(set) var commentCount = 0
    /// A single line, or the data of one event (its `data:` lines joined),
    /// longer than this is a broken upstream, not an event: without the event
    /// cap, `data:` lines with no blank line grew a worker by 325 MB.
    public let maxEventBytes: Int
    private var eventBytes = 0

    public init(maxEventBytes: Int = 4 << 20) { self.maxEventBytes = maxEventBytes }

    public struct Overflow: Error, CustomStringConvertible {
        public let limit: Int
        public var description: String { "the upstream sent an SSE event over \(limit) bytes" }
    }

    /// Feeds bytes; returns the events completed by them. Each run of bytes
    /// up to a line break is found by a tight scan and appended at once (an
    /// append per byte was most of the parser's ~11,000 instructions per
    /// 200-byte event, bench 3b).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws -> [Event] {
        var out: [Event] = []
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return out }
        let n = bytes.count
        var i = 0
        while i < n {
            if lastWasCR {
                lastWasCR = false
                if base[i] == 0x0A { i += 1; continue } // the LF of a CRLF
            }
            var j = i
            while j < n, base[j] != 0x0A, base[j] != 0x0D { j += 1 }
            if j > i {
                // The cap holds to within one read (libcurl's buffer, 16 KiB).
                if line.count + (j - i) + eventBytes > maxEventBytes { throw Overflow(limit: maxEventBytes) }
                line.append(contentsOf: UnsafeBufferPointer(start: base + i, count: j - i))
            }
            guard j < n else { break }
            lastWasCR = base[j] == 0x0D
            if let e = endLine() { out.append(e) }
            i = j + 1
        }
        return out
    }

    public mutating func feed(_ bytes: [UInt8]) throws -> [Event] {
        try bytes.withUnsafeBytes { try feed($0) }
    }

    private mutating func endLine() -> Event? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            guard hasData else { eventName = nil; return nil }
            let e = Event(event: eventName, data: dataLines.count == 1 ? dataLines[0] : dataLines.joined(separator: "\n"), id: lastID)
            dataLines.removeAll()
            eventBytes = 0
            hasData = false
            eventName = nil
            return e
        }
        if line[0] == UInt8(ascii: ":") { commentCount += 1; return nil }
        var field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8>
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == 0x20 { value = value.dropFirst() }
        } else {
            field = line[...]
            value = []
        }
        let v = String(decoding: value, as: UTF8.self)
        if field.elementsEqual("data".utf8) {
            dataLines.append(v)
            hasData = true
            eventBytes += value.count + 1
        } else if field.elementsEqual("event".utf8) {
            eventName = v
        } else if field.elementsEqual("id".utf8), !value.contains(0) {
            lastID = v
        } // `retry` and unknown fields are ignored
        return nil
    }
}

/// Framing for the events the gateway writes.
public enum SSEFrame {
    /// One `data:` event. `data` must not contain CR or LF: JSON serialized by
    /// `JSON` never does; other text is split into several `data:` lines.
    public static func data(_ data: String) -> String {
        // Per relayed event: a memchr and one buffer (a closure over the
        // UTF-8 view and interpolation were ~13,000 instructions, bench 3b).
        if !data.containsLineBreak {
            return ASCIIText.build(capacity: data.utf8.count + 8) { w in
                w.text("data: ")
                w.text(data)
                w.byte(0x0A)
                w.byte(0x0A)
            }
        }
        var out = ""
        for l in data.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            out += "data: \(l)\n"
        }
        return out + "\n"
    }

    public static func json(_ value: JSON) -> String { "data: " + value.serialized() + "\n\n" }

    /// An event with its `event:` name when it has one (Anthropic's streams
    /// name every event), its data as it came.
    public static func named(_ event: String?, _ data: String) -> String {
        guard let event, !event.isEmpty, !event.containsLineBreak else { return Self.data(data) }
        return "event: " + event + "\n" + Self.data(data)
    }
    public static let done = "data: [DONE]\n\n"
    public static let keepAlive = ": keep-alive\n\n"

    public static let headers: [(String, String)] = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    ]
}
