/// A validated chat completion request, ready to go upstream.
public struct ChatRequest: Sendable {
    /// The OpenAI-format body, every field the client sent kept in order,
    /// `model` filled in when it was missing.
    public var body: JSON
    public var model: String
    public var stream: Bool
    /// `stream_options.include_usage`: usage also at the top level of the
    /// last chunk (Moonshot puts it in `choices[0].usage`).
    public var includeUsage: Bool
    public var messageCount: Int
    public var characters: Int
    /// True when `body` differs from what the client sent (the model was
    /// filled in); otherwise the client's bytes can be forwarded as they are.
    public var modified: Bool
    /// The most bytes a non-stream answer to this request can have: see `answerByteCap`.
    public var answerByteCap: Int
    /// `max_tokens` / `max_completion_tokens` when the client named one: the
    /// larger of the two when both are there (which one Kimi honours is not
    /// documented; with `max_completion_tokens: 1, max_tokens: 32768` it
    /// produced 32,768 tokens), so the reservation and the answer's byte cap
    /// hold whichever the upstream obeys.
    public var maxTokens: Int? = nil
    /// What the prompt will cost, for the reservations (`PromptEstimate`).
    public var promptTokens = 1
    /// `n`: completions asked for.
    public var choices = 1

    /// What a chat answer can weigh: per choice, the completion tokens
    /// (`max_tokens`, else `limits.maxTokens`; reasoning counts among them)
    /// at 32 bytes each — a token is a few characters, and JSON escapes a
    /// non-ASCII one as `\uXXXX`, 6 bytes per UTF-16 unit — plus 64 KiB for
    /// the envelope, tool-call framing and usage. An answer past this is a
    /// broken upstream (a 502), not a completion: 32768 tokens → 1.06 MiB.
    public static func answerByteCap(maxTokens: Int, choices: Int) -> Int {
        (64 << 10) + max(1, choices) * maxTokens * 32
    }
}

/// Validation at the boundary: every rule here is a 400 before anything is
/// sent upstream.
public enum ChatValidation {
    /// `developer` is OpenAI's newer name for `system`; Kimi takes it as one.
    public static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool"]

    /// Validates an OpenAI `/v1/chat/completions` body, its model against
    /// `allowedModels` (default: the configured models).
    public static func validate(_ body: JSON, config: GatewayConfig, allowedModels: [String]? = nil) throws(GatewayError) -> ChatRequest {
        let chat = try validateShape(body, config: config)
        try checkModel(chat.model, allowed: allowedModels ?? config.upstream.models.map(\.id))
        return chat
    }

    /// The model must be one this client may use (the gateway's catalogue,
    /// narrowed by its key). Checked after the shape, so a malformed request
    /// is refused before the model list is fetched.
    public static func checkModel(_ model: String, allowed: [String]) throws(GatewayError) {
        guard allowed.contains(model) else {
            throw .badRequest("Model '\(HeaderSafety.printable(model, max: 80))' is not allowed; available: \(allowed.joined(separator: ", "))")
        }
    }

    /// Everything but the model's allow-list.
    public static func validateShape(_ body: JSON, config: GatewayConfig) throws(GatewayError) -> ChatRequest {
        guard body.objectValue != nil else { throw .badRequest("Request body must be a JSON object") }
        // Model: default from config, must be on the allow-list.
        var model = config.upstream.defaultModel
        var out = body
        var modified = false
        if let m = body["model"] {
            guard let s = m.stringValue else { throw .badRequest("'model' must be a string") }
            guard !s.isEmpty else { throw .badRequest("'model' must not be empty") }
            model = s
        } else {
            out = out.setting("model", .string(model))
            modified = true
        }
        // Messages.
        guard let messagesValue = body["messages"] else { throw .badRequest("'messages' is required") }
        guard let messages = messagesValue.arrayValue else { throw .badRequest("'messages' must be an array") }
        guard !messages.isEmpty else { throw .badRequest("'messages' must not be empty") }
        guard messages.count <= config.limits.maxMessages else {
            throw .badRequest("Too many messages: \(messages.count) (limit \(config.limits.maxMessages))")
        }
        var chars = 0
        var developer = false
        for (i, m) in messages.enumerated() {
            chars += try validateMessage(m, index: i, isLast: i == messages.count - 1)
            developer = developer || m["role"]?.stringValue == "developer"
        }
        if developer {
            // Sent upstream as `system`, the role Kimi documents.
            out = out.setting("messages", .array(messages.map { $0["role"]?.stringValue == "developer" ? $0.setting("role", "system") : $0 }))
            modified = true
        }
        guard chars <= config.limits.maxChars else {
            throw .badRequest("Messages too long: \(chars) characters (limit \(config.limits.maxChars))")
        }
        // Scalars with a type the upstream would reject anyway, checked here
        // so nothing malformed is forwarded.
        var completionTokens = config.limits.maxTokens
        var named: Int?
        for key in ["max_tokens", "max_completion_tokens"] {
            if let v = body[key], !v.isNull {
                guard let n = v.intValue else { throw .badRequest("'\(key)' must be an integer") }
                defer { named = max(named ?? n, n); completionTokens = named! }
                guard n >= 1 else { throw .badRequest("'\(key)' must be at least 1") }
                guard n <= config.limits.maxTokens else {
                    throw .badRequest("'\(key)' \(n) exceeds the limit of \(config.limits.maxTokens)")
                }
            }
        }
        for key in ["temperature", "top_p", "presence_penalty", "frequency_penalty"] {
            if let v = body[key], !v.isNull, v.doubleValue == nil { throw .badRequest("'\(key)' must be a number") }
        }
        var choices = 1
        if let v = body["n"], !v.isNull {
            guard let n = v.intValue, n >= 1, n <= 16 else { throw .badRequest("'n' must be an integer from 1 to 16") }
            choices = n
        }
        var stream = false
        if let v = body["stream"], !v.isNull {
            guard let b = v.boolValue else { throw .badRequest("'stream' must be a boolean") }
            stream = b
        }
        var includeUsage = false
        if let so = body["stream_options"], !so.isNull {
            guard so.objectValue != nil else { throw .badRequest("'stream_options' must be an object") }
            if let iu = so["include_usage"], !iu.isNull {
                guard let b = iu.boolValue else { throw .badRequest("'stream_options.include_usage' must be a boolean") }
                includeUsage = b
            }
        }
        return ChatRequest(body: out, model: model, stream: stream, includeUsage: includeUsage,
                           messageCount: messages.count, characters: chars, modified: modified,
                           answerByteCap: ChatRequest.answerByteCap(maxTokens: completionTokens, choices: choices),
                           maxTokens: named, promptTokens: PromptEstimate.tokens(out), choices: choices)
    }

    /// One message; returns its character count in Unicode scalars: grapheme
    /// clusters would let "a" plus 500k combining marks count as one.
    static func validateMessage(_ m: JSON, index i: Int, isLast: Bool) throws(GatewayError) -> Int {
        guard m.objectValue != nil else { throw .badRequest("messages[\(i)] must be an object") }
        guard let role = m["role"]?.stringValue else { throw .badRequest("messages[\(i)].role is required and must be a string") }
        guard roles.contains(role) else {
            throw .badRequest("messages[\(i)].role '\(HeaderSafety.printable(role, max: 40))' is not one of system, developer, user, assistant, tool")
        }
        let hasToolCalls = m["tool_calls"].map { !$0.isNull } ?? false
        guard let content = m["content"], !content.isNull else {
            if role == "assistant" && hasToolCalls { return 0 }
            throw .badRequest("messages[\(i)].content is required")
        }
        if let s = content.stringValue {
            // An assistant message may be empty when it carries tool calls, or
            // is the prefix of a partial-mode completion; a tool's result may be
            // empty (a tool that returned nothing).
            if s.trimmingSpaces().isEmpty && !(role == "assistant" && (hasToolCalls || isLast)) && role != "tool" {
                throw .badRequest("messages[\(i)].content must not be empty")
            }
            return s.unicodeScalars.count
        }
        if let parts = content.arrayValue {
            guard !parts.isEmpty else { throw .badRequest("messages[\(i)].content must not be empty") }
            var n = 0
            for (k, p) in parts.enumerated() {
                guard let type = p["type"]?.stringValue else { throw .badRequest("messages[\(i)].content[\(k)].type is required") }
                if type == "text" {
                    guard let t = p["text"]?.stringValue else { throw .badRequest("messages[\(i)].content[\(k)].text must be a string") }
                    n += t.unicodeScalars.count
                }
            }
            return n
        }
        throw .badRequest("messages[\(i)].content must be a string or an array of content parts")
    }
}
