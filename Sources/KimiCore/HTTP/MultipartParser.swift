/// An incremental `multipart/form-data` parser (RFC 7578 over RFC 2046
/// §5.1): bytes in arbitrary pieces, events out, a part's content passed on
/// as it arrives and never held whole (a 100 MB upload costs the size of
/// one piece). Header blocks are bounded (16 KiB) and so is the number of
/// parts (64).
public struct MultipartParser {
    public struct Part: Equatable, Sendable {
        /// `name` of the Content-Disposition (the form field).
        public var name: String
        public var filename: String?
        public var contentType: String?
    }

    public enum Event: Equatable {
        case begin(Part)
        case data([UInt8])
        case end
    }

    public struct Malformed: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    enum State { case preamble, headers, content, epilogue }

    /// `\r\n--boundary`; the first boundary may come without the CRLF.
    private let delimiter: [UInt8]
    private var state = State.preamble
    private var buffer: [UInt8] = []
    private var parts = 0
    public static let maxHeaderBytes = 16 << 10
    public static let maxParts = 64

    /// The boundary from a `Content-Type: multipart/form-data; boundary=…`,
    /// nil when there is none (or it is longer than RFC 2046's 70).
    public init?(contentType: String) {
        guard contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        var boundary: Substring?
        for param in contentType.split(separator: ";").dropFirst() {
            let kv = param.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].trimmingCharacters() == "boundary" else { continue }
            var v = kv[1].trimmingCharacters()
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = v.dropFirst().dropLast() }
            boundary = v
        }
        guard let boundary, (1...70).contains(boundary.utf8.count) else { return nil }
        delimiter = Array("\r\n--\(boundary)".utf8)
        buffer.reserveCapacity(64 << 10)
        buffer += [0x0D, 0x0A] // so the first boundary looks like every other
    }

    /// Whether the closing boundary has been seen.
    public var isComplete: Bool { state == .epilogue }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(Malformed) -> [Event] {
        guard state != .epilogue else { return [] } // the epilogue is ignored
        buffer.append(contentsOf: bytes)
        var events: [Event] = []
        loop: while true {
            switch state {
            case .preamble:
                guard let at = find(delimiter, from: 0) else {
                    // Keep only what could still start the delimiter.
                    if buffer.count > delimiter.count { buffer.removeFirst(buffer.count - delimiter.count) }
                    break loop
                }
                guard let next = try afterDelimiter(at) else { break loop }
                if next == .epilogue { state = .epilogue; break loop }
                state = .headers
            case .headers:
                guard let end = find([0x0D, 0x0A, 0x0D, 0x0A], from: 0) else {
                    if buffer.count > Self.maxHeaderBytes { throw Malformed(description: "a part's headers exceed \(Self.maxHeaderBytes) bytes") }
                    break loop
                }
                guard end <= Self.maxHeaderBytes else { throw Malformed(description: "a part's headers exceed \(Self.maxHeaderBytes) bytes") }
                let part = try Self.part(headers: Array(buffer[..<end]))
                parts += 1
                guard parts <= Self.maxParts else { throw Malformed(description: "more than \(Self.maxParts) parts") }
                buffer.removeFirst(end + 4)
                events.append(.begin(part))
                state = .content
            case .content:
                if let at = find(delimiter, from: 0) {
                    if at > 0 { events.append(.data(Array(buffer[..<at]))) }
                    buffer.removeFirst(at)
                    guard let next = try afterDelimiter(0) else { break loop }
                    events.append(.end)
                    if next == .epilogue { state = .epilogue; break loop }
                    state = .headers
                } else {
                    // Everything but a tail that could be the start of the delimiter.
                    let safe = buffer.count - (delimiter.count - 1)
                    if safe > 0 {
                        events.append(.data(Array(buffer[..<safe])))
                        buffer.removeFirst(safe)
                    }
                    break loop
                }
            case .epilogue:
                break loop
            }
        }
        return events
    }

    public mutating func feed(_ bytes: [UInt8]) throws(Malformed) -> [Event] {
        var copy = bytes
        let result: Result<[Event], Malformed> = copy.withUnsafeMutableBytes { p in
            do throws(Malformed) { return .success(try feed(UnsafeRawBufferPointer(p))) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// At `at` starts a delimiter: what follows it is `--` (the close) or
    /// CRLF (another part); nil when not enough bytes are there yet.
    private mutating func afterDelimiter(_ at: Int) throws(Malformed) -> State? {
        let rest = at + delimiter.count
        guard buffer.count >= rest + 2 else { return nil }
        if buffer[rest] == 0x2D, buffer[rest + 1] == 0x2D {
            buffer.removeAll()
            return .epilogue
        }
        // Transport padding (spaces, tabs) may precede the CRLF (RFC 2046).
        var i = rest
        while i < buffer.count, buffer[i] == 0x20 || buffer[i] == 0x09 { i += 1 }
        guard buffer.count >= i + 2 else { return nil }
        guard buffer[i] == 0x0D, buffer[i + 1] == 0x0A else { throw Malformed(description: "a boundary is not followed by CRLF") }
        buffer.removeFirst(i + 2)
        return .headers
    }

    private func find(_ needle: [UInt8], from start: Int) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        let first = needle[0]
        var i = start
        let last = buffer.count - needle.count
        while i <= last {
            if buffer[i] == first {
                var j = 1
                while j < needle.count, buffer[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    static func part(headers raw: [UInt8]) throws(Malformed) -> Part {
        var name: String?
        var filename: String?
        var type: String?
        for line in String(decoding: raw, as: UTF8.self).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { throw Malformed(description: "a part header has no colon") }
            let key = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters()
            if key == "content-disposition" {
                for param in value.split(separator: ";").dropFirst() {
                    let kv = param.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2 else { continue }
                    var v = kv[1].trimmingCharacters()
                    if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = v.dropFirst().dropLast() }
                    switch kv[0].trimmingCharacters().lowercased() {
                    case "name": name = String(v)
                    case "filename": filename = String(v)
                    default: break
                    }
                }
            } else if key == "content-type" {
                type = String(value)
            }
        }
        guard let name else { throw Malformed(description: "a part has no Content-Disposition name") }
        return Part(name: name, filename: filename, contentType: type)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
