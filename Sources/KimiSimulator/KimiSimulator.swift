import FastCGI
import Glibc
import KimiCore

/// An OpenAI/Moonshot-compatible upstream for tests, benchmarks and
/// `make run` without a key. It is a FastCGI responder behind the run's
/// nginx; it answers like the Kimi API (errors as `{"error":{type,message}}`,
/// stream usage inside `choices[0].usage`, then `[DONE]`), and it records
/// whether a streaming client left early (`GET /sim/stats`).
public final class KimiSimulator: @unchecked Sendable {
    let defaults: SimulatorDirectives
    let stats = Locked(SimulatorStats())
    var router = Router<(FastCGIExchange, Request, [String: String]) -> Void>()
    /// Uploaded files, by id (`KimiSimulator+Files.swift`).
    let files = Locked<[String: SimulatedFile]>([:])

    /// The built-in table, plus `KIMI_SIM_EXTRA_MODELS` (comma-separated):
    /// a model "Kimi has just added", which the gateway must serve without
    /// a config change.
    let models: Locked<[GatewayConfig.Model]>

    public init(env: [String: String]) {
        defaults = SimulatorDirectives(tokens: Int(env["KIMI_SIM_TOKENS"] ?? "") ?? 24,
                                       delayMs: Int(env["KIMI_SIM_DELAY_MS"] ?? "") ?? 0,
                                       firstMs: Int(env["KIMI_SIM_FIRST_MS"] ?? "") ?? 0,
                                       spelling: JSONRespelling.Style(rawValue: env["KIMI_SIM_SPELLING"] ?? "") ?? .compact)
        let extra = (env["KIMI_SIM_EXTRA_MODELS"] ?? "").split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        models = Locked(KimiModels.catalogue + extra.map { GatewayConfig.Model(id: $0, contextLength: KimiModels.contextLength($0)) })
        // Like Kimi: any Bearer key is a client; the stats are the tests' own.
        router.add("POST", "/v1/chat/completions", access: .client) { [unowned self] ex, req, _ in self.chat(ex, req) }
        router.add("GET", "/v1/models", access: .client) { [unowned self] ex, req, _ in self.modelList(ex, req) }
        router.add("GET", "/sim/stats", access: .open) { [unowned self] ex, req, _ in self.statsRoute(ex, req) }
        router.add("POST", "/sim/keys", access: .open) { [unowned self] ex, req, _ in self.keyRule(ex, req) }
        router.add("POST", "/sim/models", access: .open) { [unowned self] ex, req, _ in self.addModel(ex, req) }
        registerFileRoutes()
        registerAnthropicRoutes()
    }

    public func handle(_ ex: FastCGIExchange) {
        var req = ex.head(requestID: RequestID.fresh())
        // Uploads are read by their handler as they arrive; everything else whole.
        if router.bodyPolicy(method: req.method, path: req.path) == .buffered,
           let refusal = ex.readBody(into: &req, maxBodyBytes: 8 << 20)
        {
            return error(ex, refusal.status, "invalid_request_error", refusal.message)
        }
        let route = router.anyRoute(path: req.path)
        if route?.access != .open { stats.update { $0.requests += 1 } }
        switch router.match(method: req.method, path: req.path) {
        case let .found(r, parameters):
            if r.access != .open {
                let auth = req.header("authorization") ?? ""
                let anthropic = Self.isAnthropic(req.path)
                // The Anthropic face also takes Anthropic's own header.
                let apiKey = anthropic ? req.header("x-api-key") ?? "" : ""
                guard (auth.hasPrefix("Bearer ") && auth.count > 7) || !apiKey.isEmpty else {
                    return error(ex, 401, "invalid_authentication_error", "Invalid Authentication")
                }
                let key = auth.hasPrefix("Bearer ") && auth.count > 7 ? String(auth.dropFirst(7)) : apiKey
                stats.update { $0.byKey[SHA256.fingerprint(key), default: 0] += 1 }
                // Keys whose name says so fail the way Kimi's do (the key
                // pool's tests), and so do keys a `POST /sim/keys` rule names.
                let rule = stats.get().keyRules.first { key.contains($0.key) }?.value
                if rule == "healthy" { return r.handler(ex, req, parameters) }
                if rule == "hang" { sleepMs(5_000) } // answers, but late: a first-byte timeout
                let failure = rule ?? ["refused", "noquota", "overloaded", "ratelimited"].first { key.contains($0) } ?? ""
                if failure == "refused" { return error(ex, 401, "invalid_authentication_error", "Invalid Authentication") }
                if failure == "noquota" {
                    return error(ex, 403, "exceeded_current_quota_error", "Your account is suspended, please check your plan and billing details")
                }
                if failure == "overloaded" {
                    return error(ex, 429, "engine_overloaded_error", "The engine is currently overloaded, please try again later")
                }
                if failure == "ratelimited" {
                    return error(ex, 429, "rate_limit_reached_error", "Your account org-sim request reached max request: 3, please try again after 2 seconds",
                                 headers: [("Retry-After", "2")])
                }
            }
            r.handler(ex, req, parameters)
        case .notFound: error(ex, 404, "resource_not_found_error", "Not found")
        case .methodNotAllowed: error(ex, 405, "invalid_request_error", "Method not allowed")
        }
    }

    func error(_ ex: FastCGIExchange, _ status: Int, _ type: String, _ message: String, headers: [(String, String)] = []) {
        if Self.isAnthropic(ex.params.requestURI ?? "") {
            // Kimi's Anthropic face: Anthropic's shape; an overloaded engine is 529.
            let s = type == "engine_overloaded_error" ? 529 : status
            return anthropicError(ex, s, AnthropicMessages.errorType(status: s), message, headers: headers)
        }
        ex.respondJSON(status: status, ["error": ["type": .string(type), "message": .string(message)]], headers: headers)
    }

    func modelList(_ ex: FastCGIExchange, _ req: Request) {
        stats.update { $0.modelLists += 1 }
        let data: [JSON] = models.get().map {
            ["id": .string($0.id), "object": "model", "created": 1_700_000_000, "owned_by": "moonshot",
             "context_length": .number($0.contextLength), "permission": []]
        }
        ex.respondJSON(status: 200, ["object": "list", "data": .array(data)])
    }

    /// `POST /sim/models {"id"}`: Kimi adds a model (tests of the gateway's refresh).
    func addModel(_ ex: FastCGIExchange, _ req: Request) {
        guard let id = (try? JSON.parse(req.body))?["id"]?.stringValue, !id.isEmpty else {
            return error(ex, 400, "invalid_request_error", "id is required")
        }
        models.update { $0.append(.init(id: id, contextLength: KimiModels.contextLength(id))) }
        ex.respondJSON(status: 200, ["id": .string(id)])
    }

    /// `POST /sim/keys {"match": "part-of-a-key", "failure": "ratelimited"|"refused"|"noquota"|"overloaded"|"healthy"|""}`:
    /// from now on keys containing `match` fail that way ("" removes the rule).
    func keyRule(_ ex: FastCGIExchange, _ req: Request) {
        guard let body = try? JSON.parse(req.body), let match = body["match"]?.stringValue, !match.isEmpty,
              let failure = body["failure"]?.stringValue else { return error(ex, 400, "invalid_request_error", "match and failure are required") }
        stats.update { if failure.isEmpty { $0.keyRules[match] = nil } else { $0.keyRules[match] = failure } }
        ex.respondJSON(status: 200, ["match": .string(match), "failure": .string(failure)])
    }

    func statsRoute(_ ex: FastCGIExchange, _ req: Request) {
        let s = stats.get()
        var byID: [(String, JSON)] = []
        for (k, v) in s.byID.sorted(by: { $0.key < $1.key }) { byID.append((k, .string(v))) }
        ex.respondJSON(status: 200, [
            "requests": .number(s.requests), "completions": .number(s.completions),
            "streamsStarted": .number(s.streamsStarted), "streamsCompleted": .number(s.streamsCompleted),
            "streamsClientLeft": .number(s.streamsClientLeft), "byId": .object(byID), "modelLists": .number(s.modelLists), "chatRequests": .number(s.chatRequests),
            "uploads": .number(s.uploads), "contentReads": .number(s.contentReads),
            "deletes": .number(s.deletes), "filesKept": .number(files.get().count),
            "anthropicRequests": .number(s.anthropicRequests), "anthropicBodySHA256": .string(s.anthropicBodySHA256), "anthropicAnswerSHA256": .string(s.anthropicAnswerSHA256),
            "anthropicHeaders": .object(s.anthropicHeaders.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }),
            "byKey": .object(s.byKey.sorted { $0.key < $1.key }.map { ($0.key, .number($0.value)) }),
            "overloadedAnswers": .number(s.overloadedAnswers),
            "requestIds": .object(s.requestIDs.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }),
            "traceparents": .object(s.traceparents.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value.map(JSON.string))) }),
        ])
    }

    func chat(_ ex: FastCGIExchange, _ req: Request) {
        stats.update { $0.chatRequests += 1 }
        guard let body = try? JSON.parse(req.body), body.objectValue != nil else {
            return error(ex, 400, "invalid_request_error", "Invalid request: body is not a JSON object")
        }
        guard let messages = body["messages"]?.arrayValue, !messages.isEmpty else {
            return error(ex, 400, "invalid_request_error", "Invalid request: messages must not be empty")
        }
        let model = body["model"]?.stringValue ?? ""
        guard models.get().contains(where: { $0.id == model }) else {
            return error(ex, 404, "resource_not_found_error", "Not found the model \(model) or Permission denied")
        }
        let lastUser = messages.last(where: { $0["role"]?.stringValue == "user" })?["content"]?.stringValue ?? ""
        var d = SimulatorDirectives.parse(lastUser, defaults: defaults)
        if let mt = body["max_tokens"]?.intValue { d.tokens = min(d.tokens, mt) }
        if let id = d.id {
            let rid = req.header("x-request-id")
            let tp = req.header("traceparent") ?? ""
            stats.update { $0.byID[id] = "received"; if let rid { $0.requestIDs[id] = rid }; $0.traceparents[id, default: []].append(tp) }
        }
        if d.overloaded > 0 {
            let rid = req.header("x-request-id") ?? ""
            let seen = stats.update { s -> Int in
                s.attemptsByRequest[rid, default: 0] += 1
                return s.attemptsByRequest[rid]!
            }
            if seen <= d.overloaded {
                stats.update { $0.overloadedAnswers += 1 }
                return error(ex, 429, "engine_overloaded_error", "The engine is currently overloaded, please try again later")
            }
        }
        if let hang = d.hangMs { sleepMs(hang) }
        if let code = d.error {
            let (type, msg): (String, String) = switch code {
            case 400: ("invalid_request_error", "Invalid request: simulated bad request")
            case 401: ("invalid_authentication_error", "Invalid Authentication")
            case 403: ("exceeded_current_quota_error", "Your account is suspended, please check your plan and billing details")
            case 429: ("rate_limit_reached_error", "Your account org-sim request reached max request: 3, please try again after 1 seconds")
            case 503: ("engine_overloaded_error", "The engine is currently overloaded, please try again later")
            default: ("server_error", "simulated server error")
            }
            return error(ex, code, type, msg, headers: code == 429 ? [("Retry-After", "2")] : [])
        }
        let promptText = messages.compactMap { $0["content"]?.stringValue }.joined(separator: "\n")
        var tokens = SimulatorText.tokens(prompt: lastUser, count: d.tokens)
        // JSON mode: the answer is a JSON object, streamed in pieces.
        if body["response_format"]?["type"]?.stringValue == "json_object" {
            let object: JSON = ["answer": .string(tokens.joined())]
            tokens = Self.pieces(object.serialized(), size: 8)
        }
        // A tool call instead of an answer, when asked for and the request offers tools.
        var toolCall: ToolCall?
        if let wanted = d.tool, let tools = body["tools"]?.arrayValue, !tools.isEmpty {
            let names = tools.compactMap { $0["function"]?["name"]?.stringValue }
            let name = names.contains(wanted) ? wanted : (names.first ?? wanted)
            let query = lastUser.split(separator: "[").first.map { String($0).trimmingSpaces() } ?? ""
            let arguments: JSON = ["query": .string(query)]
            toolCall = ToolCall(id: "call_sim\(RequestID.fresh().prefix(8))", name: name, arguments: arguments.serialized())
            tokens = []
        }
        // Thinking models reason first (`reasoning_content`), as Kimi's do.
        let thinking = KimiModels.reasons(model, body: body)
        // Kimi's rule with thinking on: every assistant turn with tool calls
        // carries its reasoning_content (an empty string is refused too).
        if thinking, let i = messages.firstIndex(where: { m in
            m["role"]?.stringValue == "assistant" && (m["tool_calls"]?.arrayValue?.isEmpty == false)
                && (m["reasoning_content"]?.stringValue ?? "").isEmpty
        }) {
            return error(ex, 400, "invalid_request_error",
                         "thinking is enabled but reasoning_content is missing in assistant tool call message at index \(i)")
        }
        let reasoningChunks = d.reasoning ?? (thinking ? min(8, max(1, d.tokens)) : 0)
        let reasoning = SimulatorText.tokens(prompt: "reasoning: " + lastUser, count: reasoningChunks)
        let choices = min(max(body["n"]?.intValue ?? 1, 1), 16)
        // Kimi bills the whole request as prompt: the messages and the tools
        // offered (their JSON text), not only the message text.
        let toolText = body["tools"].map { $0.serializedBytes().count } ?? 0
        let prompt = (promptText.count + toolText) / 4 + 1
        let completion = (tokens.count + reasoning.count) * choices
        var usage: JSON = ["prompt_tokens": .number(prompt), "completion_tokens": .number(completion), "total_tokens": .number(prompt + completion)]
        if let c = d.cached {
            usage = Clock.monotonicNanos() & 1 == 0 ? usage.setting("cached_tokens", .number(min(c, prompt)))
                : usage.setting("prompt_tokens_details", ["cached_tokens": .number(min(c, prompt))])
        }
        let answer = Answer(id: "chatcmpl-sim\(RequestID.fresh())", created: .number(Clock.unixSeconds()), model: model,
                            tokens: tokens, reasoning: reasoning, toolCall: toolCall, choices: choices, usage: usage,
                            finish: toolCall != nil ? "tool_calls" : body["max_tokens"]?.intValue.map { $0 <= tokens.count && d.tokens == $0 ? "length" : "stop" } ?? "stop")
        if body["stream"]?.boolValue == true {
            stream(ex, d: d, answer: answer)
        } else {
            sleepMs(d.firstMs + d.delayMs * max(0, tokens.count - 1))
            stats.update { $0.completions += 1; if let i = d.id { $0.byID[i] = "completed" } }
            var message: JSON = ["role": "assistant", "content": .string(tokens.joined())]
            if !reasoning.isEmpty { message = message.setting("reasoning_content", .string(reasoning.joined())) }
            if let t = toolCall {
                message = message.setting("tool_calls", [["id": .string(t.id), "type": "function",
                                                          "function": ["name": .string(t.name), "arguments": .string(t.arguments)]]])
            }
            let json: JSON = [
                "id": .string(answer.id), "object": "chat.completion", "created": answer.created, "model": .string(model),
                "choices": .array((0..<choices).map { ["index": .number($0), "message": message, "finish_reason": answer.finish] }),
                "usage": usage,
            ]
            ex.respond(status: 200, headers: [("Content-Type", "application/json")],
                       body: JSONRespelling.respell(json.serializedBytes(), style: d.spelling, seed: Clock.monotonicNanos()))
        }
    }

    struct ToolCall {
        let id: String
        let name: String
        let arguments: String
    }

    struct Answer {
        let id: String
        let created: JSON
        let model: String
        let tokens: [String]
        let reasoning: [String]
        let toolCall: ToolCall?
        let choices: Int
        let usage: JSON
        let finish: JSON
    }

    /// Moonshot's stream shape: one chunk per token per choice, the
    /// reasoning first, then each choice's last chunk with its
    /// `finish_reason` and the usage inside the choice, then `[DONE]`.
    func stream(_ ex: FastCGIExchange, d: SimulatorDirectives, answer a: Answer) {
        stats.update { $0.streamsStarted += 1; if let i = d.id { $0.byID[i] = "streaming" } }
        ex.writeHead(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        func chunk(_ index: Int, _ delta: JSON, finish: JSON = .null, usage: JSON? = nil) -> String {
            var choice: JSON = ["index": .number(index), "delta": delta, "finish_reason": finish]
            if let usage { choice = choice.setting("usage", usage) }
            let json: JSON = ["id": .string(a.id), "object": "chat.completion.chunk", "created": a.created,
                              "model": .string(a.model), "choices": [choice]]
            guard d.spelling != .compact else { return SSEFrame.json(json) }
            return SSEFrame.data(String(decoding: JSONRespelling.respell(json.serializedBytes(), style: d.spelling, seed: Clock.monotonicNanos()),
                                        as: UTF8.self))
        }
        func send(_ s: String) -> Bool { ex.write(s) && ex.flush() }
        func left() {
            stats.update { $0.streamsClientLeft += 1; if let i = d.id { $0.byID[i] = "client-left" } }
        }
        func sendAll(_ delta: (Int) -> JSON) -> Bool { (0..<a.choices).allSatisfy { send(chunk($0, delta($0))) } }
        guard sendAll({ _ in ["role": "assistant", "content": ""] }) else { return left() }
        for (i, r) in a.reasoning.enumerated() {
            sleepMs(i == 0 ? d.firstMs : d.delayMs)
            guard sendAll({ _ in ["reasoning_content": .string(r)] }) else { return left() }
        }
        for (i, t) in a.tokens.enumerated() {
            if let cut = d.cut, i >= cut {
                stats.update { if let id = d.id { $0.byID[id] = "cut" } }
                return
            }
            sleepMs(i == 0 && a.reasoning.isEmpty ? d.firstMs : d.delayMs)
            guard sendAll({ _ in ["content": .string(t)] }) else { return left() }
        }
        if let t = a.toolCall {
            // The call's head, then its arguments in pieces, as Kimi streams them.
            guard sendAll({ _ in ["tool_calls": [["index": 0, "id": .string(t.id), "type": "function",
                                                  "function": ["name": .string(t.name), "arguments": ""]]]] }) else { return left() }
            for piece in Self.pieces(t.arguments, size: 5) {
                sleepMs(d.delayMs)
                guard sendAll({ _ in ["tool_calls": [["index": 0, "function": ["arguments": .string(piece)]]]] }) else { return left() }
            }
        }
        for i in 0..<a.choices {
            guard send(chunk(i, [:], finish: a.finish, usage: a.usage)) else { return left() }
        }
        guard send(SSEFrame.done) else { return left() }
        stats.update { $0.streamsCompleted += 1; if let i = d.id { $0.byID[i] = "completed" } }
    }

    /// `text` in pieces of `size` characters.
    static func pieces(_ text: String, size: Int) -> [String] {
        var out: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            out.append(String(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return out
    }

    func sleepMs(_ ms: Int) { if ms > 0 { usleep(useconds_t(min(ms, 3_600_000)) * 1000) } }
}

struct SimulatorStats {
    var requests = 0
    var completions = 0
    var streamsStarted = 0
    var streamsCompleted = 0
    var streamsClientLeft = 0
    var byID: [String: String] = [:]
    /// `X-Request-Id` as received, by `[sim:id=...]`.
    var requestIDs: [String: String] = [:]
    /// The `traceparent` of every attempt of a request named by `id=` ("" when it had none).
    var traceparents: [String: [String]] = [:]
    /// `GET /models` answered.
    var modelLists = 0
    /// `POST /chat/completions` received.
    var chatRequests = 0
    /// Files uploaded, and file contents read.
    var uploads = 0
    var contentReads = 0
    /// Files deleted (`DELETE /files/{id}` that found its file).
    var deletes = 0
    /// The Anthropic face: requests, the last one's forwarded headers (the
    /// `x-api-key` by fingerprint) and the SHA-256 of its body as received.
    var anthropicRequests = 0
    var anthropicHeaders: [String: String] = [:]
    var anthropicBodySHA256 = ""
    /// The SHA-256 of the last answer's bytes (a stream's: every frame written).
    var anthropicAnswerSHA256 = ""
    /// Requests per upstream key fingerprint (authenticated routes).
    var byKey: [String: Int] = [:]
    /// `[sim:overloaded=N]`: attempts seen per X-Request-Id, and the 429s given.
    var attemptsByRequest: [String: Int] = [:]
    var overloadedAnswers = 0
    /// `POST /sim/keys` rules: a part of a key → how it fails.
    var keyRules: [String: String] = [:]
}
