import FastCGI
import Glibc
import KimiCore

/// Kimi's Anthropic-compatible face (`/anthropic/v1/messages`), as observed
/// (DESIGN.md §2): Anthropic's request and answer shapes, its SSE events
/// (`message_start` with the real `input_tokens`, thinking blocks with a
/// signature, `tool_use` with `input_json_delta`, `message_delta` with the
/// output count, `message_stop`), its error shape, and no `count_tokens`
/// (404: the gateway falls back to Kimi's tokenizer). The key may come as
/// `x-api-key` or as a bearer token. Like the chat face it varies what the
/// real API may vary: with `spelling=random` each event's JSON is respelled.
extension KimiSimulator {
    func registerAnthropicRoutes() {
        router.add("POST", "/anthropic/v1/messages", access: .client) { [unowned self] ex, req, _ in self.anthropicMessages(ex, req) }
    }

    static func isAnthropic(_ path: String) -> Bool { path.hasPrefix("/anthropic/") }

    func anthropicError(_ ex: FastCGIExchange, _ status: Int, _ type: String, _ message: String, headers: [(String, String)] = []) {
        ex.respondJSON(status: status, ["type": "error", "error": ["type": .string(type), "message": .string(message)]], headers: headers)
    }

    /// The text of a content value: a string, or its text blocks.
    static func text(_ content: JSON?) -> String {
        if let s = content?.stringValue { return s }
        return (content?.arrayValue ?? []).compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.joined(separator: "\n")
    }

    func anthropicMessages(_ ex: FastCGIExchange, _ req: Request) {
        stats.update { s in
            s.anthropicRequests += 1
            s.anthropicBodySHA256 = SHA256.hexString(SHA256.digest(req.body))
            for name in ["anthropic-version", "anthropic-beta", "x-claude-code-session-id", "x-api-key-seen", "traceparent"] {
                s.anthropicHeaders[name] = req.header(name)
            }
            s.anthropicHeaders["x-api-key-seen"] = req.header("x-api-key").map(SHA256.fingerprint)
        }
        guard let body = try? JSON.parse(req.body), body.objectValue != nil else {
            return anthropicError(ex, 400, "invalid_request_error", "messages: body is not a JSON object")
        }
        guard let messages = body["messages"]?.arrayValue, !messages.isEmpty else {
            return anthropicError(ex, 400, "invalid_request_error", "messages: at least one message is required")
        }
        guard let maxTokens = body["max_tokens"]?.intValue, maxTokens >= 1 else {
            return anthropicError(ex, 400, "invalid_request_error", "max_tokens: Field required")
        }
        let model = body["model"]?.stringValue ?? ""
        guard models.get().contains(where: { $0.id == model }) else {
            return anthropicError(ex, 404, "not_found_error", "model: \(model) not found")
        }
        let lastUser = Self.text(messages.last(where: { $0["role"]?.stringValue == "user" })?["content"])
        var d = SimulatorDirectives.parse(lastUser, defaults: defaults)
        d.tokens = min(d.tokens, maxTokens)
        if let id = d.id { stats.update { $0.byID[id] = "received" } }
        if let hang = d.hangMs { sleepMs(hang) }
        if let code = d.error {
            let status = code == 503 ? 529 : code
            return anthropicError(ex, status, AnthropicMessages.errorType(status: status), "simulated error \(status)",
                                  headers: status == 429 ? [("Retry-After", "2")] : [])
        }
        // Kimi bills the whole request as prompt (system, messages, tools);
        // a request that marks blocks `cache_control` is half a cache hit,
        // which Anthropic reports apart from `input_tokens`.
        let promptBytes = Self.text(body["system"]).utf8.count + messages.map { Self.text($0["content"]).utf8.count }.reduce(0, +)
            + (body["tools"].map { $0.serializedBytes().count } ?? 0)
        let prompt = promptBytes / 4 + 1
        let cacheRead = String(decoding: req.body, as: UTF8.self).contains("cache_control") ? prompt / 2 : 0
        let tokens = SimulatorText.tokens(prompt: lastUser, count: d.tokens)
        let thinking = body["thinking"]?["type"]?.stringValue == "enabled" || (d.reasoning ?? 0) > 0
        let reasoning = thinking ? SimulatorText.tokens(prompt: "reasoning: " + lastUser, count: d.reasoning ?? min(8, max(1, d.tokens))) : []
        // Base64 with the characters a re-serialiser might escape (`/`, `+`, `=`).
        let signature = "EqQBCkYIBxgCKkD/" + SHA256.hex(lastUser).prefix(40) + "+sim/sig=="
        var tool: (id: String, name: String, input: JSON)?
        if let wanted = d.tool, let tools = body["tools"]?.arrayValue, !tools.isEmpty {
            let names = tools.compactMap { $0["name"]?.stringValue }
            let query = lastUser.split(separator: "[").first.map { String($0).trimmingSpaces() } ?? ""
            tool = ("toolu_sim" + RequestID.fresh().prefix(10), names.contains(wanted) ? wanted : (names.first ?? wanted), ["query": .string(query)])
        }
        let output = reasoning.count + (tool == nil ? tokens.count : 8)
        var usage: JSON = ["input_tokens": .number(prompt - cacheRead), "output_tokens": .number(output)]
        if cacheRead > 0 { usage = usage.setting("cache_read_input_tokens", .number(cacheRead)).setting("cache_creation_input_tokens", 0) }
        let id = "msg_sim" + RequestID.fresh()
        let stop: String = tool != nil ? "tool_use" : (tokens.count >= maxTokens ? "max_tokens" : "end_turn")
        guard body["stream"]?.boolValue == true else {
            sleepMs(d.firstMs + d.delayMs * max(0, tokens.count - 1))
            stats.update { $0.completions += 1; if let i = d.id { $0.byID[i] = "completed" } }
            var content: [JSON] = []
            if thinking { content.append(["type": "thinking", "thinking": .string(reasoning.joined()), "signature": .string(signature)]) }
            if let tool {
                content.append(["type": "tool_use", "id": .string(tool.id), "name": .string(tool.name), "input": tool.input])
            } else {
                content.append(["type": "text", "text": .string(tokens.joined())])
            }
            let answer: JSON = ["id": .string(id), "type": "message", "role": "assistant", "model": .string(model), "content": .array(content),
                                "stop_reason": .string(stop), "stop_sequence": .null, "usage": usage]
            let bytes = JSONRespelling.respell(answer.serializedBytes(), style: d.spelling, seed: Clock.monotonicNanos())
            stats.update { $0.anthropicAnswerSHA256 = SHA256.hexString(SHA256.digest(bytes)) }
            return ex.respond(status: 200, headers: [("Content-Type", "application/json")], body: bytes)
        }
        stats.update { $0.streamsStarted += 1; if let i = d.id { $0.byID[i] = "streaming" } }
        ex.writeHead(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        // Every event is named: Anthropic's SDKs dispatch on the name (a
        // data-only event is dropped by them), so Kimi's face must name them.
        // What was written, hashed when the stream ends (the tests compare what their client got).
        let written = SHA256.Hasher()
        defer { stats.update { $0.anthropicAnswerSHA256 = written.finalHex() } }
        func event(_ type: String, _ data: JSON) -> Bool {
            let text = d.spelling == .compact ? data.serialized()
                : String(decoding: JSONRespelling.respell(data.serializedBytes(), style: d.spelling, seed: Clock.monotonicNanos()), as: UTF8.self)
            let frame = "event: \(type)\n" + SSEFrame.data(text)
            written.update(Array(frame.utf8))
            return ex.write(frame) && ex.flush()
        }
        func left() { stats.update { $0.streamsClientLeft += 1; if let i = d.id { $0.byID[i] = "client-left" } } }
        let startUsage = usage.setting("output_tokens", 1)
        guard event("message_start", ["type": "message_start", "message": [
            "id": .string(id), "type": "message", "role": "assistant", "model": .string(model), "content": [],
            "stop_reason": .null, "stop_sequence": .null, "usage": startUsage]]) else { return left() }
        guard event("ping", ["type": "ping"]) else { return left() }
        var index = 0
        var deltas = 0
        func block(_ start: JSON, _ pieces: [JSON]) -> Bool {
            guard event("content_block_start", ["type": "content_block_start", "index": .number(index), "content_block": start]) else { return false }
            for p in pieces {
                sleepMs(deltas == 0 ? d.firstMs : d.delayMs)
                if let cut = d.cut, deltas >= cut { return false }
                guard event("content_block_delta", ["type": "content_block_delta", "index": .number(index), "delta": p]) else { return false }
                deltas += 1
            }
            defer { index += 1 }
            return event("content_block_stop", ["type": "content_block_stop", "index": .number(index)])
        }
        if thinking {
            let pieces: [JSON] = reasoning.map { ["type": "thinking_delta", "thinking": .string($0)] } + [["type": "signature_delta", "signature": .string(signature)]]
            guard block(["type": "thinking", "thinking": "", "signature": ""], pieces) else { return d.cut != nil ? cutShort(d) : left() }
        }
        if let tool {
            let pieces = Self.pieces(tool.input.serialized(), size: 5).map { JSON.object([("type", "input_json_delta"), ("partial_json", .string($0))]) }
            guard block(["type": "tool_use", "id": .string(tool.id), "name": .string(tool.name), "input": [:]], pieces) else {
                return d.cut != nil ? cutShort(d) : left()
            }
        } else {
            guard block(["type": "text", "text": ""], tokens.map { ["type": "text_delta", "text": .string($0)] }) else {
                return d.cut != nil ? cutShort(d) : left()
            }
        }
        guard event("message_delta", ["type": "message_delta", "delta": ["stop_reason": .string(stop), "stop_sequence": .null],
                                      "usage": ["output_tokens": .number(output)]]),
              event("message_stop", ["type": "message_stop"]) else { return left() }
        stats.update { $0.streamsCompleted += 1; if let i = d.id { $0.byID[i] = "completed" } }
    }

    /// `cut=N`: the stream ends after N deltas, with no `message_delta` and no `message_stop`.
    private func cutShort(_ d: SimulatorDirectives) {
        stats.update { if let id = d.id { $0.byID[id] = "cut" } }
    }
}
