import Glibc

/// Parsing (RFC 8259), strict: one value, optional surrounding whitespace,
/// no trailing commas, no duplicate member names, nesting bounded so a
/// hostile body cannot exhaust a worker thread's stack.
public struct JSONParseError: Error, Equatable, CustomStringConvertible, Sendable {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSON {
    public static let maxDepth = 64

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSON {
        try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) -> JSON in
            var p = JSONParser(buf)
            p.skipWhitespace()
            let v = try p.value(depth: 0)
            p.skipWhitespace()
            guard p.i == buf.count else { throw p.error("unexpected data after the value") }
            return v
        }
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSON { try parse(Array(text.utf8)) }

    /// Whether `bytes` is one JSON value, by the same strict rules as
    /// `parse`, without building it: a relayed answer is checked, then
    /// passed on byte for byte. Building the tree to throw it away was
    /// 16,500 instructions of a relayed completion's ~268,000 (callgrind).
    /// An object of more than 16 members, or a member name
    /// with an escape among them, is left to `parse`.
    public static func isValid(_ bytes: [UInt8]) -> Bool {
        walk(bytes) ?? ((try? parse(bytes)) != nil)
    }

    /// The walk alone: nil when it leaves the answer to `parse`.
    static func walk(_ bytes: [UInt8]) -> Bool? {
        bytes.withUnsafeBufferPointer { buf in
            var v = JSONValidator(JSONParser(buf))
            do {
                v.p.skipWhitespace()
                try v.value(depth: 0)
                v.p.skipWhitespace()
                return v.p.i == buf.count
            } catch JSONValidator.Outcome.invalid {
                return false
            } catch {
                return nil // .undecided
            }
        }
    }
}

/// `JSON.isValid`'s walk: the parser's grammar and string rules, nothing
/// built. Member names are compared as the raw bytes between their quotes,
/// which is exact while no name has an escape; past that (or past 16
/// members) the walk says `.undecided` and the caller parses.
struct JSONValidator {
    enum Outcome: Error { case invalid, undecided }
    var p: JSONParser
    /// The member names of the objects being walked, innermost last: the
    /// first `top` places (kept, not removed, when an object ends).
    var names: [Range<Int>] = []
    var top = 0
    init(_ p: JSONParser) { self.p = p }

    mutating func value(depth: Int) throws(Outcome) {
        guard depth < JSON.maxDepth, p.i < p.b.count else { throw .invalid }
        switch p.b[p.i] {
        case UInt8(ascii: "{"): try object(depth: depth)
        case UInt8(ascii: "["): try array(depth: depth)
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            do { _ = try p.numberEnd() } catch { throw .invalid }
        default: throw .invalid
        }
    }

    mutating func literal(_ word: StaticString) throws(Outcome) {
        do { try p.literal(word) } catch { throw .invalid }
    }

    mutating func object(depth: Int) throws(Outcome) {
        p.i += 1
        let first = top
        defer { top = first }
        p.skipWhitespace()
        if p.i < p.b.count, p.b[p.i] == UInt8(ascii: "}") { p.i += 1; return }
        while true {
            p.skipWhitespace()
            guard p.i < p.b.count, p.b[p.i] == UInt8(ascii: "\"") else { throw .invalid }
            let start = p.i + 1
            guard try string() else { throw .undecided } // an escaped name: compare decoded, as parse does
            let name = start..<(p.i - 1)
            guard top - first < 16 else { throw .undecided }
            for other in names[first..<top] where other.count == name.count {
                if memcmp(p.b.baseAddress! + other.lowerBound, p.b.baseAddress! + name.lowerBound, name.count) == 0 { throw .invalid }
            }
            if top < names.count { names[top] = name } else { names.append(name) }
            top += 1
            p.skipWhitespace()
            guard p.i < p.b.count, p.b[p.i] == UInt8(ascii: ":") else { throw .invalid }
            p.i += 1
            p.skipWhitespace()
            try value(depth: depth + 1)
            p.skipWhitespace()
            guard p.i < p.b.count else { throw .invalid }
            if p.b[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
            if p.b[p.i] == UInt8(ascii: "}") { p.i += 1; return }
            throw .invalid
        }
    }

    mutating func array(depth: Int) throws(Outcome) {
        p.i += 1
        p.skipWhitespace()
        if p.i < p.b.count, p.b[p.i] == UInt8(ascii: "]") { p.i += 1; return }
        while true {
            p.skipWhitespace()
            try value(depth: depth + 1)
            p.skipWhitespace()
            guard p.i < p.b.count else { throw .invalid }
            if p.b[p.i] == UInt8(ascii: ",") { p.i += 1; continue }
            if p.b[p.i] == UInt8(ascii: "]") { p.i += 1; return }
            throw .invalid
        }
    }

    /// Walks a string by the parser's rules; true when it had no escape.
    mutating func string() throws(Outcome) -> Bool {
        p.i += 1
        let start = p.i
        let nonASCII = p.skipPlainRun()
        guard p.i < p.b.count else { throw .invalid }
        if p.b[p.i] == UInt8(ascii: "\"") {
            if nonASCII {
                do { _ = try p.validUTF8(start, p.i) } catch { throw .invalid }
            }
            p.i += 1
            return true
        }
        // Escapes or a control character: the parser's own string rules.
        p.i = start - 1
        do { _ = try p.string() } catch { throw .invalid }
        return false
    }
}

struct JSONParser {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0
    init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

    func error(_ reason: String) -> JSONParseError { JSONParseError(offset: i, reason: reason) }

    mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSON {
        guard depth < JSON.maxDepth else { throw error("nesting deeper than \(JSON.maxDepth)") }
        guard i < b.count else { throw error("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw error("unexpected end of input") }
        for k in 0..<n where b[i + k] != word.utf8Start[k] { throw error("invalid literal") }
        i += n
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSON {
        i += 1
        var members: [(String, JSON)] = []
        // Duplicates: a scan of the members so far while there are few (a
        // Set per object, hashing every key, was 7 % of a relayed
        // completion's instructions, callgrind), a Set past 16.
        var seen: Set<String>?
        skipWhitespace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try string()
            let duplicate: Bool
            if members.count < 16 {
                duplicate = members.contains { $0.0 == key }
            } else {
                if seen == nil { seen = Set(members.map(\.0)) }
                duplicate = !seen!.insert(key).inserted
            }
            guard !duplicate else { throw error("duplicate member \"\(key.prefix(40))\"") }
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
            i += 1
            skipWhitespace()
            members.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            guard i < b.count else { throw error("unexpected end of input") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSON {
        i += 1
        var items: [JSON] = []
        skipWhitespace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            guard i < b.count else { throw error("unexpected end of input") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw error("expected ',' or ']'")
        }
    }

    mutating func number() throws(JSONParseError) -> String {
        let start = i
        let end = try numberEnd()
        return String(decoding: UnsafeBufferPointer(rebasing: b[start..<end]), as: UTF8.self)
    }

    /// Moves past a number's grammar (RFC 8259 §6) and returns where it ends.
    mutating func numberEnd() throws(JSONParseError) -> Int {
        if b[i] == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.b.count, p.b[p.i] >= 0x30, p.b[p.i] <= 0x39 { p.i += 1 }
            return p.i - s
        }
        guard i < b.count else { throw error("invalid number") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else if digits(&self) == 0 { throw error("invalid number") }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw error("invalid number") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw error("invalid number") }
        }
        return i
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONParseError) -> String {
        i += 1
        let start = i
        // Fast path: no escapes. ASCII needs no UTF-8 validation: the
        // validating initializer (generic, a metadata look-up per call) was
        // 31 calls and 8 % of a relayed completion's instructions (callgrind),
        // nearly all for ASCII keys and values.
        let nonASCII = skipPlainRun()
        guard i < b.count else { throw error("unterminated string") }
        if b[i] == UInt8(ascii: "\"") {
            let s = !nonASCII ? String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self) : try validUTF8(start, i)
            i += 1
            return s
        }
        var out = Array(b[start..<i])
        while true {
            guard i < b.count else { throw error("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { throw error("unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid code point") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw error("invalid escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8") }
        return s
    }

    /// Moves `i` to the first `"`, `\\` or control byte of a string's
    /// content (or the end), eight bytes a step while none is among them;
    /// true when a byte on the way was not ASCII. Byte by byte this was
    /// ~14 instructions a byte, the most of checking a relayed answer.
    mutating func skipPlainRun() -> Bool {
        var high: UInt64 = 0
        if let base = b.baseAddress {
            let raw = UnsafeRawPointer(base)
            let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
            while i + 8 <= b.count {
                let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let quote = x ^ (ones &* 0x22), backslash = x ^ (ones &* 0x5C)
                // A byte is 0 in `quote` or `backslash`, or below 0x20 in `x`
                // (may flag bytes after a true one: the loop below decides).
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((x &- ones &* 0x20) & ~x)
                if special & highs != 0 { break }
                high |= x
                i += 8
            }
        }
        var seen: UInt8 = 0
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 {
            seen |= b[i]
            i += 1
        }
        return high & 0x8080_8080_8080_8080 != 0 || seen >= 0x80
    }

    func validUTF8(_ from: Int, _ to: Int) throws(JSONParseError) -> String {
        let slice = UnsafeBufferPointer(rebasing: b[from..<to])
        guard let s = String(validating: slice, as: UTF8.self) else { throw error("invalid UTF-8") }
        return s
    }
}
