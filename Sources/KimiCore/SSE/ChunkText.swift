/// Whether an upstream stream chunk carries answer text — a non-empty
/// `content`, `reasoning_content` or `tool_calls[].function.arguments`
/// delta in any choice — whatever its JSON spelling: whitespace around
/// the colons, members in any order, names written with `\u` escapes. The
/// interrupted-stream estimate (a completion token per delta), the time to
/// the first token and the metrics count these. (A byte search for
/// `content":"` missed every delta of an upstream that writes a space
/// after each colon, and every tool-call delta: a client that left after 40
/// deltas was charged 3 tokens.)
///
/// The compact spelling most chunks use is decided on bytes; anything else
/// that could hold one of the names is parsed.
public enum ChunkText {
    public static func carriesText(_ data: String) -> Bool {
        // A text delta in the compact spelling: `"content":"x`, `"arguments":"x`.
        if data.containsBytes(#"content":""#, notFollowedBy: 0x22) || data.containsBytes(#"arguments":""#, notFollowedBy: 0x22) {
            return true
        }
        // None of the names, not even escaped: no text in any spelling.
        guard data.containsBytes("content") || data.containsBytes("arguments") || data.containsBytes(#"\u"#) else { return false }
        guard let chunk = try? JSON.parse(data) else { return false }
        return carriesText(chunk)
    }

    /// The same on a parsed chunk.
    public static func carriesText(_ chunk: JSON) -> Bool {
        for choice in chunk["choices"]?.arrayValue ?? [] {
            guard let delta = choice["delta"] else { continue }
            if nonEmpty(delta["content"]) || nonEmpty(delta["reasoning_content"]) { return true }
            for call in delta["tool_calls"]?.arrayValue ?? [] where nonEmpty(call["function"]?["arguments"]) { return true }
        }
        return false
    }

    private static func nonEmpty(_ v: JSON?) -> Bool { v?.stringValue.map { !$0.isEmpty } ?? false }

    /// Whether a chunk may hold the member `"name"` in some spelling: its
    /// bytes as written, or any `\u` escape (which may spell a name). A
    /// byte search for `"usage"` alone missed an escaped `"us\u0061ge"`: the
    /// final usage chunk was lost, and an escaped `"error"` would have been
    /// relayed verbatim, unredacted.
    public static func mayHold(_ data: String, _ quotedName: StaticString) -> Bool {
        data.containsBytes(quotedName) || data.containsBytes(#"\u"#)
    }
}
