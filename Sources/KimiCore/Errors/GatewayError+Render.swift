/// The one place errors become responses, per face.
extension GatewayError {
    /// Status, headers and JSON body for `face`.
    public func rendered(for face: APIFace) -> (status: Int, headers: [(String, String)], body: JSON) {
        var headers = extraHeaders
        switch face {
        case .app:
            return (status, headers, ["success": false, "error": .string(message)])
        case .openAI:
            if code == .unauthorized { headers.append(("WWW-Authenticate", "Bearer")) }
            let codeValue: JSON = openAICode.map { .string($0) } ?? .null
            return (status, headers, ["error": ["message": .string(message), "type": .string(type), "code": codeValue]])
        case .anthropic:
            let (status, body) = AnthropicMessages.error(self)
            return (status, headers, body)
        }
    }

    /// The same error as one SSE event, for failures after a stream's head was sent.
    public func sseEvent(for face: APIFace) -> String {
        switch face {
        case .app: return "data: " + (["error": .string(message)] as JSON).serialized() + "\n\n"
        case .openAI: return "data: " + rendered(for: .openAI).body.serialized() + "\n\n"
        case .anthropic: return "event: error\ndata: " + rendered(for: .anthropic).body.serialized() + "\n\n"
        }
    }
}

extension ResponseWriter {
    public func respond(error: GatewayError, face: APIFace, headers: [(String, String)] = []) {
        let r = error.rendered(for: face)
        respondJSON(status: r.status, r.body, headers: headers + r.headers)
    }
}
