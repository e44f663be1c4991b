import Testing
@testable import KimiCore

/// The Anthropic Messages face (issue #30): what the gateway reads of a
/// request and of Kimi's answers, on fixtures in the shapes Kimi sends.
@Suite struct AnthropicMessagesTests {
    let config = GatewayConfig()

    func json(_ s: String) -> JSON { try! JSON.parse(Array(s.utf8)) }

    @Test func aRequestNeedsAModelMaxTokensAndMessagesOfUserOrAssistant() throws {
        func error(_ s: String) -> String? {
            do { _ = try AnthropicMessages.validate(json(s), config: config); return nil } catch { return error.message }
        }
        #expect(error(#"{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#) == "model: Field required")
        #expect(error(#"{"model":"k","messages":[{"role":"user","content":"hi"}]}"#) == "max_tokens: Field required")
        #expect(error(#"{"model":"k","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#) == "max_tokens: must be at least 1")
        #expect(error(#"{"model":"k","max_tokens":999999,"messages":[{"role":"user","content":"hi"}]}"#)?.contains("exceeds the limit") == true)
        #expect(error(#"{"model":"k","max_tokens":5,"messages":[]}"#)?.hasPrefix("messages:") == true)
        #expect(error(#"{"model":"k","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#) == "messages.0.role: must be \"user\" or \"assistant\"")
        #expect(error(#"{"model":"k","max_tokens":5,"messages":[{"role":"user","content":5}]}"#)?.hasPrefix("messages.0.content") == true)
        #expect(error(#"{"model":"k","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]}"#) == "stream: must be a boolean")
        let ok = try AnthropicMessages.validate(json(#"""
            {"model":"kimi-k2","max_tokens":64,"stream":true,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
             "messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}
            """#), config: config)
        #expect(ok == .init(model: "kimi-k2", stream: true, maxTokens: 64, promptTokens: ok.promptTokens))
    }

    @Test func thePromptEstimateCountsSystemAndToolsAndPricesImagesByType() throws {
        let bare = try AnthropicMessages.validate(json(#"{"model":"k","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#), config: config)
        let tools = "[" + (0..<50).map { #"{"name":"tool\#($0)","description":"\#(String(repeating: "d", count: 300))","input_schema":{"type":"object"}}"# }.joined(separator: ",") + "]"
        let withTools = try AnthropicMessages.validate(json(#"{"model":"k","max_tokens":5,"tools":\#(tools),"messages":[{"role":"user","content":"hi"}]}"#), config: config)
        #expect(withTools.promptTokens > bare.promptTokens + 50 * 300 / 4)
        let photo = String(repeating: "A", count: 400_000)
        let image = try AnthropicMessages.validate(json(#"""
            {"model":"k","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"\#(photo)"}},{"type":"text","text":"what is it?"}]}]}
            """#), config: config)
        #expect(image.promptTokens < PromptEstimate.imageTokens + 100) // priced as an image, not as 100,000 tokens of base64
    }

    @Test func usageCountsEveryInputKindAsPromptAndCacheReadsAsCached() {
        let u = AnthropicMessages.ledgerUsage(json(#"{"input_tokens":100,"cache_read_input_tokens":300,"cache_creation_input_tokens":20,"output_tokens":7}"#))
        #expect(u == json(#"{"prompt_tokens":420,"completion_tokens":7,"total_tokens":427,"cached_tokens":300}"#))
        let r = ReportedTokens(u!, bound: 10_000)
        #expect(r == .init(prompt: 420, completion: 7, cached: 300))
        // Hostile counts are saturated and then clamped, never trapped on.
        let huge = AnthropicMessages.ledgerUsage(json(#"{"input_tokens":9223372036854775807,"cache_read_input_tokens":9223372036854775807,"output_tokens":-5}"#))!
        let clamped = ReportedTokens(huge, bound: 1000)
        #expect(clamped.prompt == 1000 && clamped.completion == 0 && clamped.clamped)
        #expect(AnthropicMessages.ledgerUsage(json(#"{}"#)) == nil)
    }

    /// A Kimi stream as observed: named events, a thinking block with its
    /// signature, a tool call in `input_json_delta` pieces.
    static let stream: [SSEParser.Event] = [
        .init(event: "message_start", data: #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"kimi-k2","content":[],"stop_reason":null,"usage":{"input_tokens":812,"cache_read_input_tokens":64,"output_tokens":1}}}"#),
        .init(event: "ping", data: #"{"type":"ping"}"#),
        .init(event: "content_block_start", data: #"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#),
        .init(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me see"}}"#),
        .init(event: "content_block_delta", data: #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB+/=="}}"#),
        .init(event: "content_block_stop", data: #"{"type":"content_block_stop","index":0}"#),
        .init(event: "content_block_start", data: #"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#),
        .init(event: "content_block_delta", data: #"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}"#),
        .init(event: "content_block_delta", data: #"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":""}}"#),
        .init(event: "content_block_start", data: #"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"grep","input":{}}}"#),
        .init(event: "content_block_delta", data: #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"q\":"}}"#),
        .init(event: "message_delta", data: #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#),
        .init(event: "message_stop", data: #"{"type":"message_stop"}"#),
    ]

    func observe(_ events: [SSEParser.Event]) -> (texts: [Bool], ends: [Bool], usage: JSON?) {
        var o = AnthropicMessages.StreamObserver()
        var texts: [Bool] = [], ends: [Bool] = []
        for e in events {
            let seen = o.observe(e)
            texts.append(seen.carriesText)
            ends.append(seen.isEnd)
        }
        return (texts, ends, o.ledgerUsage)
    }

    @Test func aStreamsTextDeltasUsageAndEndAreReadWhetherEventsAreNamedOrNotAndHoweverSpelled() {
        let expectedTexts = [false, false, false, true, false, false, false, true, false, false, true, false, false]
        let expectedUsage = json(#"{"prompt_tokens":876,"completion_tokens":42,"total_tokens":918,"cached_tokens":64}"#)
        let named = observe(Self.stream)
        #expect(named.texts == expectedTexts)
        #expect(named.ends == expectedTexts.indices.map { $0 == expectedTexts.count - 1 })
        #expect(named.usage == expectedUsage)
        // The same events without `event:` names, and respelled (spaces, escapes).
        for style in [JSONRespelling.Style.spaced, .random] {
            let variants = Self.stream.enumerated().map { i, e in
                SSEParser.Event(event: nil, data: String(decoding: JSONRespelling.respell(Array(e.data.utf8), style: style, seed: UInt64(i) &* 7919), as: UTF8.self))
            }
            let seen = observe(variants)
            #expect(seen.texts == expectedTexts, "\(style)")
            #expect(seen.usage == expectedUsage, "\(style)")
            #expect(seen.ends.last == true && seen.ends.dropLast().allSatisfy { !$0 })
            #expect(variants.map(StreamDialect.anthropic.isEnd) == seen.ends)
        }
    }

    @Test func anErrorEventEndsTheStreamAndIsRebuiltWithoutTheKey() {
        var o = AnthropicMessages.StreamObserver()
        let e = SSEParser.Event(event: "error", data: #"{"type":"error","error":{"type":"overloaded_error","message":"key sk-secret-123456789 is overloaded"}}"#)
        let seen = o.observe(e)
        #expect(seen.isEnd && seen.error != nil && StreamDialect.anthropic.isEnd(e))
        let frame = AnthropicMessages.streamError(seen.error!, apiKey: "sk-secret-123456789")
        #expect(frame.hasPrefix("event: error\ndata: ") && frame.hasSuffix("\n\n"))
        #expect(!frame.contains("sk-secret-123456789") && frame.contains(#""type":"overloaded_error""#))
        let odd = AnthropicMessages.streamError(json(#"{"type":"error","error":{"type":"weird","message":"x"}}"#), apiKey: "")
        #expect(odd.contains(#""type":"api_error""#))
    }

    @Test func theRelayStateMachineFinishesAnAnthropicStreamOnMessageStop() {
        var m = SSERelayStateMachine(keepAliveNanos: 1_000_000_000, dialect: .anthropic)
        _ = m.upstreamHead(status: 200, headers: [:], now: 0)
        let text = Self.stream.map { "event: \($0.event!)\ndata: \($0.data)\n\n" }.joined() + "event: ping\ndata: {}\n\n"
        guard case let .relay(events) = m.upstreamData(Array(text.utf8)) else { Issue.record("no relay"); return }
        #expect(events.count == Self.stream.count) // nothing after message_stop
        #expect(m.written(ok: true, now: 1) == .keepReceiving)
        #expect(m.upstreamFinished(.completed) == .finished)
        var cut = SSERelayStateMachine(keepAliveNanos: 1_000_000_000, dialect: .anthropic)
        _ = cut.upstreamHead(status: 200, headers: [:], now: 0)
        _ = cut.upstreamData(Array(Self.stream.prefix(8).map { "event: \($0.event!)\ndata: \($0.data)\n\n" }.joined().utf8))
        _ = cut.written(ok: true, now: 1)
        #expect(cut.upstreamFinished(.completed) == .failed(.upstreamFailed("Upstream stream ended before message_stop")))
    }

    @Test func errorsTakeAnthropicsShapeAndTheStatusesItsSDKsMap() {
        func rendered(_ e: GatewayError) -> (Int, String?) {
            let r = e.rendered(for: .anthropic)
            #expect(r.body["type"] == "error" && r.body["error"]?["message"]?.stringValue == e.message)
            return (r.status, r.body["error"]?["type"]?.stringValue)
        }
        #expect(rendered(.badRequest("x")) == (400, "invalid_request_error"))
        #expect(rendered(.unauthorized()) == (401, "authentication_error"))
        #expect(rendered(.forbidden("x")) == (403, "permission_error"))
        #expect(rendered(.notFound("/v1/messages/x")) == (404, "not_found_error"))
        #expect(rendered(.payloadTooLarge(limit: 10)) == (413, "request_too_large"))
        #expect(rendered(.rateLimited(retryAfter: 3)) == (429, "rate_limit_error"))
        #expect(rendered(.internalError()) == (500, "api_error"))
        #expect(rendered(.upstreamFailed("x")) == (502, "api_error"))
        #expect(rendered(.overloaded(retryAfter: 1)) == (529, "overloaded_error"))
        #expect(GatewayError.rateLimited(retryAfter: 3).rendered(for: .anthropic).headers.contains { $0.0 == "Retry-After" })
        #expect(GatewayError.badRequest("x").sseEvent(for: .anthropic).hasPrefix("event: error\ndata: {\"type\":\"error\""))
    }

    @Test func theFaceOfARequestNoRouteMatchedIsFoundFromItsPathAndHeaders() {
        #expect(APIFace(path: "/v1/messages") == .anthropic)
        #expect(APIFace(path: "/v1/messages/count_tokens") == .anthropic)
        #expect(APIFace(path: "/v1/messagesx") == .openAI)
        #expect(APIFace(path: "/v1/models") == .openAI)
        #expect(APIFace(path: "/v1/models", anthropicVersion: true) == .anthropic)
        #expect(APIFace(path: "/v1/chat/completions", anthropicVersion: true) == .openAI)
        #expect(APIFace(path: "/api/info") == .app)
    }

    @Test func theAnthropicEndpointIsTheKeysBaseWithAnthropicForV1UnlessConfigured() {
        #expect(AnthropicMessages.baseURL(keyBaseURL: "https://api.moonshot.ai/v1", configured: "") == "https://api.moonshot.ai/anthropic")
        #expect(AnthropicMessages.baseURL(keyBaseURL: "https://api.moonshot.cn/v1/", configured: "") == "https://api.moonshot.cn/anthropic")
        #expect(AnthropicMessages.baseURL(keyBaseURL: "http://127.0.0.1:9/proxy", configured: "") == "http://127.0.0.1:9/proxy/anthropic")
        #expect(AnthropicMessages.baseURL(keyBaseURL: "https://api.moonshot.ai/v1", configured: "https://kimi.example/anth/") == "https://kimi.example/anth")
    }

    @Test func theModelListAndTheTokenizerBodyTakeTheirShapes() {
        let list = AnthropicMessages.modelList(["kimi-k2", "moonshot-v1-8k"])
        #expect(list["data"]?[0] == json(#"{"type":"model","id":"kimi-k2","display_name":"kimi-k2","created_at":"2025-01-01T00:00:00Z"}"#))
        #expect(list["has_more"] == false && list["first_id"] == "kimi-k2" && list["last_id"] == "moonshot-v1-8k")
        let body = AnthropicMessages.tokenizerBody(json(#"""
            {"model":"k","system":[{"type":"text","text":"Be brief."}],"tools":[{"name":"grep"}],
             "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"grep","input":{"q":"x"}}]},
                         {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"found"}]}]}]}
            """#), model: "kimi-k2")
        #expect(body == json(#"""
            {"model":"kimi-k2","messages":[{"role":"system","content":"Be brief."},{"role":"system","content":"[{\"name\":\"grep\"}]"},
             {"role":"user","content":"hi"},{"role":"assistant","content":"{\"q\":\"x\"}"},{"role":"user","content":"found"}]}
            """#))
    }
}
