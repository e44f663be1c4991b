/// Token usage from a completion or a stream chunk. OpenAI puts it at the
/// top level; Moonshot's streams put it in `choices[0].usage` of the last
/// chunk. Both are read.
public enum Usage {
    public static func find(in chunk: JSON) -> JSON? {
        if let u = chunk["usage"], u.objectValue != nil { return u }
        if let u = chunk["choices"]?[0]?["usage"], u.objectValue != nil { return u }
        return nil
    }

    /// The chunk with `usage` also at the top level, when it is only inside
    /// `choices[0]` (for clients that asked for `stream_options.include_usage`).
    public static func hoisted(_ chunk: JSON) -> JSON? {
        if let u = chunk["usage"], u.objectValue != nil { return nil }
        guard let u = chunk["choices"]?[0]?["usage"], u.objectValue != nil else { return nil }
        return chunk.setting("usage", u)
    }

    /// `prompt+completion=total` for the access log.
    public static func logWord(_ u: JSON) -> String {
        "tokens=\(u["prompt_tokens"]?.intValue ?? 0)+\(u["completion_tokens"]?.intValue ?? 0)"
    }
}
