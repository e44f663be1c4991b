import KimiCore
import Upstream

/// The Anthropic Messages face: Claude Code and the Anthropic
/// SDKs through `ANTHROPIC_BASE_URL`, relayed natively to Kimi's Anthropic
/// endpoint — the request's bytes go as the client sent them, the answer's
/// come back as Kimi sent them (thinking signatures intact), and the gateway
/// acts only where it must: the key, the model allow-list, the limits,
/// budgets and ledger of the chat routes, errors in Anthropic's shape.
extension Gateway {
    /// Client headers passed on to Kimi as sent (the client's own key never is).
    static let anthropicForwardedHeaders = ["anthropic-version", "anthropic-beta", "x-claude-code-session-id"]

    /// `POST /v1/messages` (JSON, or SSE with `"stream": true`).
    func anthropicMessages(_ ctx: RequestContext) throws {
        let body = try ctx.jsonBody()
        let request = try AnthropicMessages.validate(body, config: ctx.config)
        let context = try ctx.allowedContext(of: request.model, services: services)
        try ctx.checkFileReferences(body, services: services)
        ctx.logNotes.append("model=\(HeaderSafety.printable(request.model, max: 60))")
        let capture = UsageCapture(model: request.model, stream: request.stream, promptTokens: request.promptTokens,
                                   tokenBound: context.addingSaturated(request.maxTokens))
        if let session = ctx.request.header("x-claude-code-session-id") {
            capture.session = HeaderSafety.printable(session, max: 128)
            ctx.logNotes.append("session=\(HeaderSafety.printable(session, max: 64).replacingSpaces())")
        }
        // max_tokens is required here, so there is never a cap to set: the
        // request's bytes go upstream unchanged.
        _ = try ctx.admitChat(capture, completionTokens: request.maxTokens, choices: 1, services: services)
        let bytes = ctx.request.body
        guard request.stream else {
            let maxBytes = ChatRequest.answerByteCap(maxTokens: request.maxTokens, choices: 1)
            let call = try ctx.withUpstreamKey(services) { key in
                BufferedCall.attempt(ctx.anthropicUpstreamRequest("/v1/messages", body: bytes, stream: false, key: key),
                                     key: key, budget: services.buffers, maxBytes: maxBytes, ctx: ctx, transport: services.transport())
            }
            guard let answer = try? JSON.parse(call.body) else {
                ctx.usage?.answerDropped = true
                throw GatewayError.upstreamFailed("Upstream answer is not JSON")
            }
            if let u = AnthropicMessages.answerUsage(answer) {
                ctx.logNotes.append(Usage.logWord(u))
                ctx.usage?.usage = u
            }
            ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "application/json"), ctx.serverTiming], body: call.body)
            return
        }
        var observer = AnthropicMessages.StreamObserver()
        let relay = StreamRelay(ctx: ctx, keepAliveSeconds: ctx.config.upstream.keepAliveSeconds, dialect: .anthropic) { event, relay in
            let seen = observer.observe(event)
            relay.eventCarriedText = seen.carriesText
            if seen.usageChanged {
                if observer.hasFinalUsage {
                    relay.usage = observer.ledgerUsage
                } else if let prompt = observer.ledgerUsage?["prompt_tokens"]?.intValue {
                    ctx.usage?.upstreamPromptTokens = prompt
                }
            }
            // An upstream error event is rebuilt, never relayed: its text may echo the key.
            if let error = seen.error {
                ctx.usage?.failed = true
                return [AnthropicMessages.streamError(error, apiKey: ctx.upstreamKey?.key ?? "")]
            }
            return [SSEFrame.named(event.event, event.data)]
        }
        try relay.run(services) { ctx.anthropicUpstreamRequest("/v1/messages", body: bytes, stream: true, key: $0) }
    }

    /// `POST /v1/messages/count_tokens`: relayed; where the upstream has no
    /// such endpoint (404), Kimi's tokenizer counts the same messages
    /// (`AnthropicMessages.tokenizerBody`) and the answer is `{"input_tokens": N}`.
    func anthropicCountTokens(_ ctx: RequestContext) throws {
        let body = try ctx.jsonBody()
        guard let model = body["model"]?.stringValue, !model.isEmpty else { throw GatewayError.badRequest("model: Field required") }
        guard let messages = body["messages"]?.arrayValue, !messages.isEmpty else { throw GatewayError.badRequest("messages: Field required") }
        _ = try ctx.allowedContext(of: model, services: services)
        try ctx.checkFileReferences(body, services: services)
        let bytes = ctx.request.body
        let call = try ctx.withUpstreamKey(services) { key in
            BufferedCall.attempt(ctx.anthropicUpstreamRequest("/v1/messages/count_tokens", body: bytes, stream: false, key: key),
                                 key: key, budget: services.buffers, maxBytes: 64 << 10, ctx: ctx, answered: [404], transport: services.transport())
        }
        if call.status != 404 {
            guard JSON.isValid(call.body) else { throw GatewayError.upstreamFailed("Upstream answer is not JSON") }
            return ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "application/json")], body: call.body)
        }
        ctx.logNotes.append("count=tokenizer")
        let counted = try ctx.upstreamCall(services, "POST", "/tokenizers/estimate-token-count",
                                           body: AnthropicMessages.tokenizerBody(body, model: model).serializedBytes())
        guard let n = (try? JSON.parse(counted.body))?["data"]?["total_tokens"]?.intValue, n >= 0 else {
            throw GatewayError.upstreamFailed("Upstream tokenizer answer has no total_tokens")
        }
        ctx.json(200, ["input_tokens": .number(n)])
    }
}

extension RequestContext {
    /// A request to Kimi's Anthropic endpoint for `key`: its URL
    /// (`AnthropicMessages.baseURL`), the pool key as Anthropic's
    /// `x-api-key` (and as the bearer token), the forwarded client headers.
    func anthropicUpstreamRequest(_ path: String, body: [UInt8], stream: Bool, key: UpstreamKey) -> UpstreamRequest {
        var r = upstreamRequest("POST", "", body: body, stream: stream, key: key)
        r.url = AnthropicMessages.baseURL(keyBaseURL: key.baseURL, configured: config.upstream.anthropicBaseURL) + path
        trace?.noteUpstream(method: "POST", url: r.url)
        r.extraHeaders = ["x-api-key: " + key.key]
        for name in Gateway.anthropicForwardedHeaders {
            if let v = request.header(name) { r.extraHeaders.append(name + ": " + v) }
        }
        return r
    }

    /// The context of `model` when this request may use it (the upstream's
    /// list narrowed by the config and the key), else a 400 naming the
    /// models it may use.
    func allowedContext(of model: String, services: Services) throws -> Int {
        let allowed = services.models.catalogue(config: config, budget: services.buffers, lookingFor: model).models(for: apiKey)
        try ChatValidation.checkModel(model, allowed: allowed.map(\.id))
        return allowed.first { $0.id == model }?.contextLength ?? KimiModels.contextLength(model)
    }
}
