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
}
