/// The Anthropic Messages face (`/v1/messages`): what the
/// gateway reads of a request and of Kimi's answers to it. A native relay —
/// the request's and the answer's bytes pass unchanged (thinking blocks keep
/// their signatures byte for byte) — so this is only what the gateway must
/// act on: the shape it checks before anything goes upstream, the usage it
/// counts, the events that carry text, the stream's end, and the shapes it
/// answers itself (errors, the model list, `count_tokens` from Kimi's
/// tokenizer). Kimi's Anthropic endpoint has no published contract; what it
/// was observed to send is in DESIGN.md §2.
public enum AnthropicMessages {
    /// What the gateway checked of a request.
    public struct Request: Equatable, Sendable {
        public var model: String
        public var stream: Bool
        /// `max_tokens`: required by the Messages API, so every request names its reservation.
        public var maxTokens: Int
        /// The whole request's prompt estimate (`PromptEstimate`).
        public var promptTokens: Int
    }

    /// The shape, before anything goes upstream: what the upstream would
    /// refuse anyway, and the gateway's own caps (`limits`).
    public static func validate(_ body: JSON, config: GatewayConfig) throws(GatewayError) -> Request {
        guard body.objectValue != nil else { throw .badRequest("Request body must be a JSON object") }
        guard let m = body["model"] else { throw .badRequest("model: Field required") }
        guard let model = m.stringValue, !model.isEmpty else { throw .badRequest("model: must be a non-empty string") }
        guard let mt = body["max_tokens"], !mt.isNull else { throw .badRequest("max_tokens: Field required") }
        guard let maxTokens = mt.intValue else { throw .badRequest("max_tokens: must be an integer") }
        guard maxTokens >= 1 else { throw .badRequest("max_tokens: must be at least 1") }
        guard maxTokens <= config.limits.maxTokens else {
            throw .badRequest("max_tokens: \(maxTokens) exceeds the limit of \(config.limits.maxTokens)")
        }
        guard let mv = body["messages"] else { throw .badRequest("messages: Field required") }
        guard let messages = mv.arrayValue else { throw .badRequest("messages: must be an array") }
        guard !messages.isEmpty else { throw .badRequest("messages: at least one message is required") }
        guard messages.count <= config.limits.maxMessages else {
            throw .badRequest("messages: \(messages.count) messages, the limit is \(config.limits.maxMessages)")
        }
        var chars = 0
        for (i, message) in messages.enumerated() {
            guard message.objectValue != nil else { throw .badRequest("messages.\(i): must be an object") }
            guard let role = message["role"]?.stringValue, role == "user" || role == "assistant" else {
                throw .badRequest("messages.\(i).role: must be \"user\" or \"assistant\"")
            }
            guard let content = message["content"] else { throw .badRequest("messages.\(i).content: Field required") }
            if let text = content.stringValue {
                chars += text.unicodeScalars.count
            } else if let blocks = content.arrayValue {
                for (j, block) in blocks.enumerated() {
                    guard block["type"]?.stringValue != nil else { throw .badRequest("messages.\(i).content.\(j).type: Field required") }
                    if let text = block["text"]?.stringValue { chars += text.unicodeScalars.count }
                }
            } else {
                throw .badRequest("messages.\(i).content: must be a string or an array of content blocks")
            }
        }
        if let s = body["system"], !s.isNull {
            if let text = s.stringValue { chars += text.unicodeScalars.count } else if s.arrayValue == nil {
                throw .badRequest("system: must be a string or an array of text blocks")
            }
        }
        guard chars <= config.limits.maxChars else {
            throw .badRequest("messages: \(chars) characters, the limit is \(config.limits.maxChars)")
        }
        var stream = false
        if let v = body["stream"], !v.isNull {
            guard let b = v.boolValue else { throw .badRequest("stream: must be a boolean") }
            stream = b
        }
        for key in ["temperature", "top_p"] {
            if let v = body[key], !v.isNull, v.doubleValue == nil { throw .badRequest("\(key): must be a number") }
        }
        if let v = body["tools"], !v.isNull, v.arrayValue == nil { throw .badRequest("tools: must be an array") }
        return Request(model: model, stream: stream, maxTokens: maxTokens, promptTokens: PromptEstimate.tokens(body))
    }

    /// Where a key's `/v1/messages` goes: `upstream.anthropicBaseURL` when
    /// set, else the key's base URL with its trailing `/v1` replaced by
    /// `/anthropic` (`https://api.moonshot.ai/v1` →
    /// `https://api.moonshot.ai/anthropic`, Kimi's Anthropic face), or
    /// `/anthropic` appended when it has no `/v1`. The path the SDKs add
    /// (`/v1/messages`) follows.
    public static func baseURL(keyBaseURL: String, configured: String) -> String {
        var base = configured.isEmpty ? keyBaseURL : configured
        while base.hasSuffix("/") { base.removeLast() }
        guard configured.isEmpty else { return base }
        if base.hasSuffix("/v1") { base.removeLast(3) }
        return base + "/anthropic"
    }

    // MARK: usage

    /// Anthropic's usage (`input_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens`, `output_tokens`) in the shape the
    /// ledger reads (`ReportedTokens`): the prompt is all three input
    /// counts (Anthropic's `input_tokens` leaves the cached ones out), the
    /// cache reads are its cached tokens. Counts are summed saturating; a
    /// count that is not an integer stays as it came, for `ReportedTokens`
    /// to clamp and mark. Nil when there is no count at all.
    public static func ledgerUsage(_ u: JSON) -> JSON? {
        guard u.objectValue != nil else { return nil }
        let parts = [u["input_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"]].compactMap { $0 }.filter { !$0.isNull }
        let output = u["output_tokens"].flatMap { $0.isNull ? nil : $0 }
        guard !parts.isEmpty || output != nil else { return nil }
        var prompt: JSON = .number("0")
        if parts.allSatisfy({ $0.intValue != nil }) {
            prompt = .number(String(parts.reduce(0) { $0.addingSaturated($1.intValue!) }))
        } else if let odd = parts.first(where: { $0.intValue == nil }) {
            prompt = odd
        }
        let completion = output ?? .number("0")
        var total: JSON = .null
        if let p = prompt.intValue, let c = completion.intValue { total = .number(String(p.addingSaturated(c))) }
        var out: JSON = ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total]
        if let cached = u["cache_read_input_tokens"], !cached.isNull { out = out.setting("cached_tokens", cached) }
        return out
    }

    /// The usage of a whole (non-stream) answer, in the ledger's shape.
    public static func answerUsage(_ answer: JSON) -> JSON? {
        answer["usage"].flatMap(ledgerUsage)
    }

    // MARK: streams

    /// Reads a relayed stream's events for what the gateway counts: the
    /// usage (`message_start` carries the input counts, `message_delta` the
    /// output count so far and, from some servers, the input counts again),
    /// the events that carry generated text (`text_delta`, `thinking_delta`,
    /// `input_json_delta` — what an interrupted stream is charged by), the
    /// end (`message_stop`) and an upstream `error` event.
    public struct StreamObserver: Equatable, Sendable {
        public private(set) var usage: JSON = [:]
        /// `message_delta` brought the output count: the usage is the
        /// answer's. Before it, only the input counts are (`message_start`'s
        /// `output_tokens` is a placeholder, 1): a stream that ends sooner is
        /// charged by its deltas, never by that 1.
        public private(set) var hasFinalUsage = false
        public init() {}

        public struct Observation: Equatable, Sendable {
            public var carriesText = false
            public var isEnd = false
            /// The upstream's `error` event, parsed: rebuilt, never relayed (its text may echo the key).
            public var error: JSON?
            public var usageChanged = false
        }

        /// The event's type: its `event:` name, else its data's `type`.
        static func type(_ e: SSEParser.Event, parsed: JSON?) -> String? {
            if let name = e.event, !name.isEmpty { return name }
            return parsed?["type"]?.stringValue
        }

        public mutating func observe(_ e: SSEParser.Event) -> Observation {
            var o = Observation()
            let named = e.event.flatMap { $0.isEmpty ? nil : $0 }
            // Deltas are most events: decided on the name and, in the
            // compact spelling, on bytes; other spellings are parsed.
            if named == "content_block_delta" || named == nil {
                if let text = Self.deltaCarriesText(e.data) { o.carriesText = text; if named != nil { return o } }
            }
            if named == "ping" { return o }
            guard let parsed = try? JSON.parse(e.data) else { return o }
            switch Self.type(e, parsed: parsed) {
            case "content_block_delta":
                o.carriesText = Self.carriesText(parsed["delta"])
            case "message_start":
                if let u = parsed["message"]?["usage"], u.objectValue != nil { merge(u); o.usageChanged = true }
            case "message_delta":
                if let u = parsed["usage"], u.objectValue != nil { merge(u); hasFinalUsage = true; o.usageChanged = true }
            case "message_stop":
                o.isEnd = true
            case "error":
                o.error = parsed
                o.isEnd = true
            default:
                break
            }
            return o
        }

        /// The usage so far, in the ledger's shape.
        public var ledgerUsage: JSON? { AnthropicMessages.ledgerUsage(usage) }

        private mutating func merge(_ u: JSON) {
            for (name, value) in u.objectValue ?? [] where !value.isNull { usage = usage.setting(name, value) }
        }

        /// A delta's text on bytes, in the compact spelling (nil: parse it).
        static func deltaCarriesText(_ data: String) -> Bool? {
            for field in [#""text":""#, #""thinking":""#, #""partial_json":""#] as [StaticString] where data.containsBytes(field) {
                return data.containsBytes(field, notFollowedBy: 0x22)
            }
            return nil
        }

        static func carriesText(_ delta: JSON?) -> Bool {
            guard let delta else { return false }
            for field in ["text", "thinking", "partial_json"] {
                if let s = delta[field]?.stringValue, !s.isEmpty { return true }
            }
            return false
        }
    }

    // MARK: what the gateway answers itself

    /// Anthropic's error body and status for a gateway error: the statuses
    /// its SDKs map to their error classes (the gateway's own overload,
    /// 503, is Anthropic's 529 `overloaded_error`).
    public static func error(_ e: GatewayError) -> (status: Int, body: JSON) {
        // The gateway's own overload, and the upstream's overload passed on (a 5xx).
        let status = e.code == .overloaded || (e.status >= 500 && e.type.hasSuffix("overloaded_error")) ? 529 : e.status
        return (status, ["type": "error", "error": ["type": .string(errorType(status: status)), "message": .string(e.message)]])
    }

    /// Anthropic's error type for a status (its SDKs' error classes).
    public static func errorType(status: Int) -> String {
        switch status {
        case 400, 405: "invalid_request_error"
        case 401: "authentication_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 413: "request_too_large"
        case 429: "rate_limit_error"
        case 529: "overloaded_error"
        default: "api_error"
        }
    }

    /// Anthropic's error types, kept when an upstream error event names one.
    static let errorTypes: Set<String> = ["invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                                          "request_too_large", "rate_limit_error", "api_error", "overloaded_error"]

    /// An upstream `error` event inside a stream, rebuilt to relay: the
    /// message scrubbed of credentials, the type one of Anthropic's.
    public static func streamError(_ event: JSON, apiKey: String) -> String {
        let e = event["error"] ?? .null
        let raw = e["message"]?.stringValue ?? "The upstream reported an error"
        let message = UpstreamErrorMapping.cleanMessage(raw, apiKey: apiKey)
        let type = e["type"]?.stringValue.flatMap { errorTypes.contains($0) ? $0 : nil } ?? "api_error"
        let body: JSON = ["type": "error", "error": ["type": .string(type), "message": .string(message.isEmpty ? "The upstream reported an error" : message)]]
        return "event: error\ndata: " + body.serialized() + "\n\n"
    }

    /// `GET /v1/models` for a client that sent `anthropic-version` (Claude
    /// Code reads it at start): Anthropic's list shape.
    public static func modelList(_ ids: [String], createdAt: String = "2025-01-01T00:00:00Z") -> JSON {
        .object([
            ("data", .array(ids.map { ["type": "model", "id": .string($0), "display_name": .string($0), "created_at": .string(createdAt)] })),
            ("has_more", false),
            ("first_id", ids.first.map { .string($0) } ?? .null),
            ("last_id", ids.last.map { .string($0) } ?? .null),
        ])
    }

    /// A Messages request as the chat body Kimi's tokenizer counts
    /// (`count_tokens` where the upstream has none): the system prompt as a
    /// system message, every block's text (tool calls and results by their
    /// JSON), and the tools as a system message of their own, so what the
    /// upstream bills as prompt is counted.
    public static func tokenizerBody(_ body: JSON, model: String) -> JSON {
        var messages: [JSON] = []
        if let s = body["system"], !s.isNull { messages.append(["role": "system", "content": .string(text(of: s))]) }
        if let tools = body["tools"], !tools.isNull { messages.append(["role": "system", "content": .string(tools.serialized())]) }
        for m in body["messages"]?.arrayValue ?? [] {
            let role = m["role"]?.stringValue == "assistant" ? "assistant" : "user"
            messages.append(["role": .string(role), "content": .string(text(of: m["content"] ?? .null))])
        }
        return ["model": .string(model), "messages": .array(messages)]
    }

    /// The text of a content value: a string, or its blocks' text.
    static func text(of content: JSON) -> String {
        if let s = content.stringValue { return s }
        var parts: [String] = []
        for block in content.arrayValue ?? [] {
            switch block["type"]?.stringValue {
            case "text": parts.append(block["text"]?.stringValue ?? "")
            case "thinking": parts.append(block["thinking"]?.stringValue ?? "")
            case "tool_result": parts.append(text(of: block["content"] ?? .null))
            case "tool_use": parts.append((block["input"] ?? .null).serialized())
            default: break // images are counted by the upstream's tokenizer rules, not their bytes
            }
        }
        return parts.joined(separator: "\n")
    }
}
