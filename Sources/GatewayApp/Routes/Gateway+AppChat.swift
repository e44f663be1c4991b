import KimiCore
import Upstream

extension Gateway {
    /// `POST /api/chat/completion` `{message, model?, system?, temperature?}`.
    func appCompletion(_ ctx: RequestContext) throws { try appChat(ctx, kind: .completion) }

    /// `POST /api/chat/history` `{messages: [{role, content}...], model?}`.
    func appHistory(_ ctx: RequestContext) throws { try appChat(ctx, kind: .history) }

    private func appChat(_ ctx: RequestContext, kind: AppChatRequest.Kind) throws {
        let openAI = try AppChatRequest.openAIBody(from: try ctx.jsonBody(), kind: kind)
        let chat = try ctx.validatedChat(openAI, services: services)
        let call = try ctx.upstreamCall(services, "POST", "/chat/completions", body: chat.body.serializedBytes(), maxBytes: chat.answerByteCap)
        try respondAppAnswer(ctx, call: call, model: chat.model)
    }

    /// The app face's answer: `{"success":true,"data":{"message","usage","model",
    /// "reasoning"?,"finish_reason"?, …extra}}` from an upstream completion.
    func respondAppAnswer(_ ctx: RequestContext, call: BufferedCall, model: String, extra: [(String, JSON)] = []) throws {
        guard let answer = try? JSON.parse(call.body), let message = answer["choices"]?[0]?["message"] else {
            ctx.usage?.answerDropped = true
            throw GatewayError.upstreamFailed("Upstream answer is not a chat completion")
        }
        let usage = Usage.find(in: answer) ?? .null
        if !usage.isNull {
            ctx.logNotes.append(Usage.logWord(usage))
            ctx.usage?.usage = usage
        }
        var data: JSON = [
            "message": message["content"] ?? "",
            "usage": usage,
            "model": answer["model"] ?? .string(model),
        ]
        if let r = message["reasoning_content"], !r.isNull { data = data.setting("reasoning", r) }
        if let f = answer["choices"]?[0]?["finish_reason"], !f.isNull { data = data.setting("finish_reason", f) }
        for (k, v) in extra { data = data.setting(k, v) }
        ctx.json(200, ["success": true, "data": data], headers: [ctx.serverTiming])
    }

    /// `POST /api/chat/stream` `{messages: "text" | [...], model?, include?}` →
    /// SSE `data: {"content":"..."}` per delta and `data: [DONE]`, as the
    /// Node.js backend sent; `include: ["usage", "reasoning"]` adds
    /// `{"usage":{...}}` before `[DONE]` and `{"reasoning":"..."}` deltas.
    func appStream(_ ctx: RequestContext) throws {
        let body = try ctx.jsonBody()
        let extras = try AppChatRequest.streamExtras(body)
        let openAI = try AppChatRequest.openAIBody(from: body, kind: .stream)
        let chat = try ctx.validatedChat(openAI, services: services)
        try streamAnswer(ctx, body: chat.body, extras: extras)
    }

    /// The app face's stream of an upstream chat: `lead`, when given, is
    /// the first event (the document route's `{"document", "model"}`).
    func streamAnswer(_ ctx: RequestContext, body: JSON, lead: JSON? = nil, extras: Set<AppChatRequest.StreamExtra>) throws {
        var leadSent = lead == nil
        let relay = StreamRelay(ctx: ctx, keepAliveSeconds: ctx.config.upstream.keepAliveSeconds) { event, relay in
            var frames: [String] = []
            if !leadSent, let lead {
                frames.append(SSEFrame.json(lead))
                leadSent = true
            }
            if event.data == "[DONE]" {
                if extras.contains(.usage), let u = relay.usage { frames.append(SSEFrame.json(["usage": u])) }
                return frames + [SSEFrame.done]
            }
            guard let chunk = try? JSON.parse(event.data) else { return frames }
            if let e = UpstreamErrorMapping.streamError(chunk, apiKey: ctx.upstreamKey?.key ?? "") {
                return frames + [SSEFrame.json(["error": .string(e.message)])]
            }
            if let u = Usage.find(in: chunk) { relay.usage = u }
            let delta = chunk["choices"]?[0]?["delta"]
            if extras.contains(.reasoning), let r = delta?["reasoning_content"]?.stringValue, !r.isEmpty {
                frames.append(SSEFrame.json(["reasoning": .string(r)]))
            }
            if let c = delta?["content"]?.stringValue, !c.isEmpty { frames.append(SSEFrame.json(["content": .string(c)])) }
            return frames
        }
        let bytes = body.serializedBytes()
        try relay.run(services) { ctx.upstreamRequest("POST", "/chat/completions", body: bytes, stream: true, key: $0) }
    }
}
