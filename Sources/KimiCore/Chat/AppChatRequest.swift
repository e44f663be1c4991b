/// The app API's request shapes (`/api/chat/...`), mapped to the OpenAI body
/// the upstream takes, then validated by the same rules as `/v1`.
public enum AppChatRequest {
    public enum Kind: Sendable { case completion, history, stream }

    /// What `/api/chat/stream` sends besides `{"content"}` events and
    /// `[DONE]`. Nothing by default: clients written for the Node.js backend
    /// do `text += JSON.parse(data).content` on every event, and anything
    /// else would add "undefined" to their text. A client asks with
    /// `"include": ["usage", "reasoning"]`.
    public enum StreamExtra: String, CaseIterable, Sendable {
        /// `{"usage": {...}}` before `[DONE]`.
        case usage
        /// `{"reasoning": "..."}` deltas of thinking models.
        case reasoning
    }

    public static func streamExtras(_ body: JSON) throws(GatewayError) -> Set<StreamExtra> {
        guard let v = body["include"], !v.isNull else { return [] }
        guard let list = v.arrayValue else { throw .badRequest("'include' must be an array of strings") }
        var out = Set<StreamExtra>()
        for item in list {
            guard let s = item.stringValue, let e = StreamExtra(rawValue: s) else {
                throw .badRequest("'include' items must be one of \(StreamExtra.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            out.insert(e)
        }
        return out
    }

    public static func openAIBody(from body: JSON, kind: Kind) throws(GatewayError) -> JSON {
        guard body.objectValue != nil else { throw .badRequest("Request body must be a JSON object") }
        var messages: [JSON] = []
        if let s = body["system"], !s.isNull {
            guard let text = s.stringValue else { throw .badRequest("'system' must be a string") }
            if !text.trimmingSpaces().isEmpty { messages.append(["role": "system", "content": .string(text)]) }
        }
        switch kind {
        case .completion:
            guard let m = body["message"] else { throw .badRequest("'message' is required") }
            guard let text = m.stringValue else { throw .badRequest("'message' must be a string") }
            guard !text.trimmingSpaces().isEmpty else { throw .badRequest("'message' must not be empty") }
            messages.append(["role": "user", "content": .string(text)])
        case .history:
            guard let m = body["messages"] else { throw .badRequest("'messages' is required") }
            guard let list = m.arrayValue else { throw .badRequest("'messages' must be an array") }
            messages += list
        case .stream:
            guard let m = body["messages"] ?? body["message"] else { throw .badRequest("'messages' is required") }
            if let text = m.stringValue {
                guard !text.trimmingSpaces().isEmpty else { throw .badRequest("'messages' must not be empty") }
                messages.append(["role": "user", "content": .string(text)])
            } else if let list = m.arrayValue {
                messages += list
            } else {
                throw .badRequest("'messages' must be a string or an array of messages")
            }
        }
        var out: JSON = ["messages": .array(messages)]
        if let model = body["model"], !model.isNull { out = out.setting("model", model) }
        for key in ["temperature", "max_tokens", "top_p"] {
            if let v = body[key], !v.isNull { out = out.setting(key, v) }
        }
        if kind == .stream { out = out.setting("stream", true) }
        return out
    }
}
