import KimiCore
import Upstream

extension Gateway {
    /// `POST /v1/chat/completions`: the OpenAI request passes through with
    /// every field the client sent; non-stream answers come back as the
    /// upstream sent them; streams are relayed event by event.
    func openAIChat(_ ctx: RequestContext) throws {
        let chat = try ctx.validatedChat(try ctx.jsonBody(), services: services)
        // Unchanged requests go upstream byte for byte as the client sent them.
        let body = chat.modified ? chat.body.serializedBytes() : ctx.request.body
        guard chat.stream else {
            let call = try ctx.upstreamCall(services, "POST", "/chat/completions", body: body, maxBytes: chat.answerByteCap)
            // Passed on byte for byte, so it must be what it claims: JSON.
            guard JSON.isValid(call.body) else {
                ctx.usage?.answerDropped = true
                throw GatewayError.upstreamFailed("Upstream answer is not JSON")
            }
            // The byte scan reads the compact spelling; any other spelling of
            // the answer is parsed (JSON may be spelled with any whitespace).
            if let u = Usage.scan(call.body) ?? (try? JSON.parse(call.body)).flatMap(Usage.find) {
                ctx.logNotes.append(Usage.logWord(u))
                ctx.usage?.usage = u
            }
            ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "application/json; charset=utf-8"), ctx.serverTiming],
                               body: call.body)
            return
        }
        let includeUsage = chat.includeUsage
        let relay = StreamRelay(ctx: ctx, keepAliveSeconds: ctx.config.upstream.keepAliveSeconds) { event, relay in
            if event.data == "[DONE]" { return (relay.finalUsageChunk.map { [SSEFrame.json($0)] } ?? []) + [SSEFrame.done] }
            // An upstream error event is rebuilt, never relayed: its text may echo the key.
            if ChunkText.mayHold(event.data, "\"error\""), let chunk = try? JSON.parse(event.data),
               let e = UpstreamErrorMapping.streamError(chunk, apiKey: ctx.upstreamKey?.key ?? "")
            {
                return [SSEFrame.json(["error": ["message": .string(e.message), "type": .string(e.type), "code": .null]])]
            }
            // Only chunks that may carry usage are parsed; the rest pass through verbatim.
            if event.data.utf8.count < 64 << 10, ChunkText.mayHold(event.data, "\"usage\""), let chunk = try? JSON.parse(event.data),
               let u = Usage.find(in: chunk)
            {
                relay.usage = u
                if let top = chunk["usage"], top.objectValue != nil {
                    relay.finalUsageChunk = nil // the upstream speaks OpenAI's shape itself
                } else if includeUsage {
                    relay.finalUsageChunk = Usage.finalChunk(from: chunk, usage: u)
                }
            }
            return [SSEFrame.data(event.data)]
        }
        try relay.run(services) { ctx.upstreamRequest("POST", "/chat/completions", body: body, stream: true, key: $0) }
    }
}
