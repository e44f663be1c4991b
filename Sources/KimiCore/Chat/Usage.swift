#if canImport(Glibc)
import Glibc
#endif

/// Token usage from a completion or a stream chunk. OpenAI puts it at the
/// top level; Moonshot's streams put it in `choices[0].usage` of the last
/// chunk. Both are read.
public enum Usage {
    public static func find(in chunk: JSON) -> JSON? {
        if let u = chunk["usage"], u.objectValue != nil { return u }
        if let u = chunk["choices"]?[0]?["usage"], u.objectValue != nil { return u }
        return nil
    }

    /// OpenAI's last stream chunk for `stream_options.include_usage`:
    /// `"choices": []` and the usage at the top level, once per stream (not
    /// once per choice when n > 1), with the id, created and model of the
    /// chunk Moonshot put the usage in (`choices[0].usage`).
    public static func finalChunk(from chunk: JSON, usage: JSON) -> JSON {
        ["id": chunk["id"] ?? "", "object": "chat.completion.chunk", "created": chunk["created"] ?? 0,
         "model": chunk["model"] ?? "", "choices": [], "usage": usage]
    }

    /// The `usage` object of a completion found without parsing the whole
    /// answer (only for the log: a long answer costs nothing extra). The
    /// last `"usage":` in the text is the top-level one in OpenAI's and
    /// Moonshot's answers, which put it after `choices`.
    private static let needle: [UInt8] = Array(#""usage":"#.utf8)

    public static func scan(_ body: [UInt8]) -> JSON? {
        let n = needle.count
        guard body.count > n else { return nil }
        return body.withUnsafeBufferPointer { b -> JSON? in
            var i = b.count - n
            while i >= 0 {
                // Compare only where the last byte matches: one branch per byte.
                if b[i + n - 1] == 0x3A, b[i] == 0x22, memcmp(b.baseAddress! + i, needle, n) == 0 {
                    var j = i + n
                    while j < b.count, b[j] == 0x20 { j += 1 }
                    guard j < b.count, b[j] == UInt8(ascii: "{"), let end = matchingBrace(body, from: j) else { return nil }
                    return try? JSON.parse(Array(b[j...end]))
                }
                i -= 1
            }
            return nil
        }
    }

    /// The index of the `}` closing the object that starts at `start`,
    /// skipping strings.
    static func matchingBrace(_ b: [UInt8], from start: Int) -> Int? {
        var depth = 0
        var inString = false
        var i = start
        while i < b.count {
            let c = b[i]
            if inString {
                if c == 0x5C { i += 1 } else if c == 0x22 { inString = false }
            } else if c == 0x22 {
                inString = true
            } else if c == UInt8(ascii: "{") {
                depth += 1
            } else if c == UInt8(ascii: "}") {
                depth -= 1
                if depth == 0 { return i }
            }
            i += 1
        }
        return nil
    }

    /// `prompt+completion=total` for the access log.
    public static func logWord(_ u: JSON) -> String {
        // ASCIIText: interpolation was ~1,700 instructions a completion (callgrind).
        ASCIIText.build(capacity: 48) { w in
            w.text("tokens="); w.number(u["prompt_tokens"]?.intValue ?? 0)
            w.byte(0x2B); w.number(u["completion_tokens"]?.intValue ?? 0)
        }
    }
}
