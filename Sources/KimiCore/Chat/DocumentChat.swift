/// Long-document Q&A (`POST /api/chat/document`), the pure parts: the
/// messages Kimi's docs recommend (the extracted text in a `system`
/// message, the question after it), and the choice of model for `auto`.
public enum DocumentChat {
    /// Kimi's documented pattern: the file's text as a system message of
    /// its own, after the caller's system prompt and before the history.
    public static func messages(document: String, system: String?, history: [JSON], message: String) -> [JSON] {
        var out: [JSON] = []
        if let system, !system.trimmingSpaces().isEmpty { out.append(["role": "system", "content": .string(system)]) }
        out.append(["role": "system", "content": .string(document)])
        out += history
        out.append(["role": "user", "content": .string(message)])
        return out
    }

    public enum Choice: Equatable {
        case model(String)
        /// No allowed model holds the prompt and the answer.
        case tooLong(largestContext: Int)
    }

    /// `auto`: the smallest allowed context that holds the prompt and the
    /// answer (`promptTokens + answerTokens`); among equals, the first in
    /// the list. `-auto` models route by size themselves and are skipped.
    public static func pickModel(promptTokens: Int, answerTokens: Int, among models: [GatewayConfig.Model]) -> Choice {
        let candidates = models.filter { !$0.id.hasSuffix("-auto") }
        let need = promptTokens + answerTokens
        var best: GatewayConfig.Model?
        for m in candidates where m.contextLength >= need {
            if best == nil || m.contextLength < best!.contextLength { best = m }
        }
        if let best { return .model(best.id) }
        return .tooLong(largestContext: candidates.map(\.contextLength).max() ?? 0)
    }

    /// The cache's key for an uploaded document: every input of Kimi's
    /// extraction — the bytes (their SHA-256) and the type the file name
    /// declares (its extension, lowercased; the same bytes as `notes.txt`
    /// and as `report.pdf` are extracted differently, and the second was
    /// answered from the first's text).
    public static func cacheKey(sha256: String, filename: String) -> String {
        let name = filename.split(separator: "/").last.map(String.init) ?? filename
        var ext = "none"
        if let dot = name.lastIndex(of: "."), name.index(after: dot) < name.endIndex {
            let e = name[name.index(after: dot)...].lowercased()
            if e.utf8.count <= 12, e.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) }) { ext = e }
        }
        return sha256 + "-" + ext
    }
}
