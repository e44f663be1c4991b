#if canImport(Glibc)
import Glibc
#endif

/// An OpenAI-shaped answer's `id`, `model` and each choice's
/// `finish_reason`, read from its bytes in one pass without building the
/// JSON tree (parsing a 300-byte completion into `JSON` was most of a
/// traced completion's cost on the exporter thread: callgrind, bench 2f).
/// Any spelling (whitespace, member order) is read; a key or a read value
/// with an escape, or bytes that are not JSON, give nil and the caller parses.
public enum AnswerSkim {
    public struct Facts: Equatable {
        public var id: String?
        public var model: String?
        public var finishReasons: [String] = []
    }

    public static func openAI(_ bytes: [UInt8]) -> Facts? {
        bytes.withUnsafeBufferPointer { b in
            var r = Reader(b: b)
            return r.answer()
        }
    }

    /// The cursor over the bytes (a struct's methods, not closures over a
    /// captured index: each access to that was an exclusivity check).
    struct Reader {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        var escaped = false
        var facts = Facts()

        init(b: UnsafeBufferPointer<UInt8>) { self.b = b }

        var atEnd: Bool { i >= b.count }
        func at(_ c: UInt8) -> Bool { i < b.count && b[i] == c }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        /// A string at `i` (its opening quote): its raw bytes' range; `escaped` says whether an escape is in it.
        /// The next quote and any backslash before it are found by `memchr`
        /// (a byte loop was most of the skim: the answer's text is one string).
        mutating func string() -> Range<Int>? {
            guard at(0x22), let base = b.baseAddress else { return nil }
            let start = i + 1
            var j = start
            escaped = false
            while j < b.count {
                guard let q = memchr(base + j, 0x22, b.count - j) else { return nil }
                let quote = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(q))
                guard let slash = memchr(base + j, 0x5C, quote - j) else {
                    i = quote + 1
                    return start..<quote
                }
                // An escape before the quote: step over it and look again.
                escaped = true
                j = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(slash)) + 2
            }
            return nil
        }

        /// A string that is read: one with an escape is left to the parser.
        mutating func plainString() -> Range<Int>? {
            guard let r = string(), !escaped else { return nil }
            return r
        }

        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self) }

        func equals(_ r: Range<Int>, _ s: StaticString) -> Bool {
            guard r.count == s.utf8CodeUnitCount else { return false }
            let p = s.utf8Start
            for k in 0..<r.count where b[r.lowerBound + k] != p[k] { return false }
            return true
        }

        /// Skips one value of any kind; false when it is not JSON.
        mutating func skipValue() -> Bool {
            skipSpace()
            guard !atEnd else { return false }
            switch b[i] {
            case 0x22: return string() != nil
            case 0x7B, 0x5B:
                var depth = 0
                while i < b.count {
                    switch b[i] {
                    case 0x22:
                        guard string() != nil else { return false }
                        continue
                    case 0x7B, 0x5B: depth += 1
                    case 0x7D, 0x5D:
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            default:
                while i < b.count, b[i] != 0x2C, b[i] != 0x7D, b[i] != 0x5D { i += 1 }
                return true
            }
        }

        /// The object at `i`: each member's key read, then `member` reads or skips its value.
        mutating func object(_ member: (inout Reader, Range<Int>) -> Bool) -> Bool {
            skipSpace()
            guard at(0x7B) else { return false }
            i += 1
            skipSpace()
            if at(0x7D) { i += 1; return true }
            while true {
                skipSpace()
                guard let key = plainString() else { return false }
                skipSpace()
                guard at(0x3A) else { return false }
                i += 1
                skipSpace()
                guard member(&self, key) else { return false }
                skipSpace()
                if at(0x2C) { i += 1; continue }
                if at(0x7D) { i += 1; return true }
                return false
            }
        }

        mutating func answer() -> Facts? {
            let ok = object { r, key in
                if r.equals(key, "id") || r.equals(key, "model") {
                    guard r.at(0x22) else { return r.skipValue() }
                    guard let v = r.plainString() else { return false }
                    if r.equals(key, "id") { r.facts.id = r.text(v) } else { r.facts.model = r.text(v) }
                    return true
                }
                guard r.equals(key, "choices"), r.at(0x5B) else { return r.skipValue() }
                return r.choices()
            }
            return ok ? facts : nil
        }

        mutating func choices() -> Bool {
            i += 1
            while true {
                skipSpace()
                guard !atEnd else { return false }
                if at(0x5D) { i += 1; return true }
                let fine = object { r, k in
                    guard r.equals(k, "finish_reason"), r.at(0x22) else { return r.skipValue() }
                    guard let v = r.plainString() else { return false }
                    r.facts.finishReasons.append(r.text(v))
                    return true
                }
                guard fine else { return false }
                skipSpace()
                if at(0x2C) { i += 1 }
            }
        }
    }
}
