/// What a chat request asked for, for its client spans (GenAI semantic
/// conventions, semantic-conventions-genai v0.1.0, "Client Inference").
public struct GenAIRequestFacts: Sendable, Equatable {
    public var model: String
    public var stream: Bool
    public var maxTokens: Int?
    /// The wire format upstream: OpenAI's chat completions or Anthropic's messages.
    public var dialect: StreamDialect
    public init(model: String, stream: Bool, maxTokens: Int?, dialect: StreamDialect) {
        (self.model, self.stream, self.maxTokens, self.dialect) = (model, stream, maxTokens, dialect)
    }
}

/// What the upstream's answer said about itself — id, model, why each
/// choice stopped and (only when content is captured) its text — read from
/// a whole answer or chunk by chunk, in either dialect. Text is kept to
/// `maxText` UTF-8 bytes so a long answer cannot grow a span without bound.
public struct GenAIResponseFacts: Sendable, Equatable {
    public var id: String?
    public var model: String?
    public var finishReasons: [String] = []
    public var text = ""
    public var textTruncated = false
    public static let maxText = 16 << 10

    public init() {}

    /// A whole (non-stream) answer.
    public mutating func observe(answer: JSON, dialect: StreamDialect, keepText: Bool) {
        take(answer)
        switch dialect {
        case .openAI:
            for choice in answer["choices"]?.arrayValue ?? [] {
                if let r = choice["finish_reason"]?.stringValue { finishReasons.append(r) }
                if keepText, let t = choice["message"]?["content"]?.stringValue { append(t) }
            }
        case .anthropic:
            if let r = answer["stop_reason"]?.stringValue { finishReasons.append(r) }
            if keepText { for block in answer["content"]?.arrayValue ?? [] { if let t = block["text"]?.stringValue { append(t) } } }
        }
    }

    /// One stream event's data, parsed.
    public mutating func observe(chunk: JSON, dialect: StreamDialect, keepText: Bool) {
        switch dialect {
        case .openAI:
            take(chunk)
            for choice in chunk["choices"]?.arrayValue ?? [] {
                if let r = choice["finish_reason"]?.stringValue { finishReasons.append(r) }
                if keepText, let t = choice["delta"]?["content"]?.stringValue { append(t) }
            }
        case .anthropic:
            if let message = chunk["message"] { take(message) }
            if let r = chunk["delta"]?["stop_reason"]?.stringValue { finishReasons.append(r) }
            if keepText, chunk["delta"]?["type"]?.stringValue == "text_delta", let t = chunk["delta"]?["text"]?.stringValue { append(t) }
        }
    }

    private mutating func take(_ o: JSON) {
        if id == nil, let v = o["id"]?.stringValue { id = String(v.prefix(256)) }
        if model == nil, let v = o["model"]?.stringValue { model = String(v.prefix(256)) }
    }

    private mutating func append(_ t: String) {
        guard !textTruncated else { return }
        if text.utf8.count + t.utf8.count <= Self.maxText { text += t; return }
        text += Self.prefix(t, bytes: Self.maxText - text.utf8.count)
        textTruncated = true
    }

    /// The longest run of whole characters from the start of `s` in `bytes` UTF-8 bytes.
    public static func prefix(_ s: String, bytes: Int) -> String {
        guard s.utf8.count > bytes else { return s }
        var out = ""
        var room = bytes
        for ch in s {
            let n = ch.utf8.count
            guard n <= room else { break }
            out.append(ch)
            room -= n
        }
        return out
    }
}
