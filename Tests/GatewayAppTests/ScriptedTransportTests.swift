import Glibc
import Testing
@testable import GatewayApp
@testable import KimiCore
import Upstream

/// The retry loop and the relays of every face, driven by a scripted
/// transport (`UpstreamTransport`) through the whole pipeline: any sequence
/// of upstream answers and failures, no socket.
final class ScriptedTransport: UpstreamTransport, @unchecked Sendable {
    enum Step {
        /// A head, then the body in these pieces.
        case answer(Int, [String: String], [String])
        case fail(UpstreamErrorMapping.TransportFailure)
    }

    private var steps: [Step]
    private(set) var requests: [UpstreamRequest] = []
    var lastHTTPVersion: Int { 0 }

    init(_ steps: [Step]) { self.steps = steps }

    func perform(_ req: UpstreamRequest, receiver: UpstreamReceiver) -> UpstreamResult {
        requests.append(req)
        guard !steps.isEmpty else { return .failed(.other("the script has no more steps")) }
        switch steps.removeFirst() {
        case let .fail(f):
            return .failed(f)
        case let .answer(status, headers, pieces):
            guard receiver.upstreamHead(status: status, headers: headers) else { return .abortedByReceiver }
            for p in pieces {
                guard Array(p.utf8).withUnsafeBytes({ receiver.upstreamData($0) }) else { return .abortedByReceiver }
            }
            return .completed
        }
    }

    var stepsLeft: Int { steps.count }
}

extension BufferedResponse {
    var text: String { String(decoding: body, as: UTF8.self) }
}

@Suite struct ScriptedTransportTests {
    /// Two pool keys, quick backoffs, no limits; the upstream never reached
    /// except through the script (the model list falls back to the built-in table).
    static let config = #"""
        {"upstream": {"baseURL": "http://127.0.0.1:9/v1", "retryBackoffMs": 1,
                      "keys": [{"name": "a", "key": "sk-upstream-a-0123456789"}, {"name": "b", "key": "sk-upstream-b-0123456789"}]},
         "rateLimit": {"enabled": false}}
        """#

    func run(_ script: ScriptedTransport, _ path: String, body: String, headers: [String: String] = [:]) -> BufferedResponse {
        let gateway = PipelineTests.makeGateway(configJSON: Self.config)
        gateway.services.transport = { script }
        let out = BufferedResponse()
        var req = Request.head(params: ["REQUEST_METHOD": "POST", "REQUEST_URI": path], requestID: "scripted")
        req.headers = headers.merging(["content-type": "application/json"]) { a, _ in a }
        req.body = Array(body.utf8)
        gateway.dispatch(RequestContext(request: req, writer: out, config: gateway.configCache.current()))
        return out
    }

    static let chatStream = #"{"model":"moonshot-v1-8k","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    static let openAIChunks = [
        #"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}"# + "\n\n",
        #"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}]}"# + "\n\ndata: [DONE]\n\n",
    ]

    @Test func aStreamThatFailsBeforeItsFirstByteIsRetriedOnTheOtherKeyAndTheClientSeesOnlyTheAnswer() {
        let script = ScriptedTransport([
            .answer(500, [:], [#"{"error":{"type":"server_error","message":"boom"}}"#]),
            .answer(200, ["content-type": "text/event-stream"], Self.openAIChunks),
        ])
        let r = run(script, "/v1/chat/completions", body: Self.chatStream)
        #expect(r.status == 200)
        #expect(r.text == Self.openAIChunks.joined())
        #expect(script.requests.count == 2)
        #expect(Set(script.requests.map(\.bearer)) == ["sk-upstream-a-0123456789", "sk-upstream-b-0123456789"])
    }

    @Test func aTransportFailureIsRetriedUntilTheRetriesRunOutThenIsTheFacesError() {
        let script = ScriptedTransport([.fail(.connect("refused")), .fail(.connect("refused")), .fail(.connect("refused")), .fail(.connect("refused"))])
        let r = run(script, "/v1/messages", body: #"{"model":"kimi-k2.6","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(script.requests.count == 3) // the first attempt and upstream.retries (2)
        #expect(r.status == 502)
        #expect(r.json?["type"] == "error" && r.json?["error"]?["type"] == "api_error")
    }

    static let anthropicEvents = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]

    @Test func anAnthropicStreamIsRelayedEventByEventWithItsNamesAndItsHeadersGoUpstream() {
        let script = ScriptedTransport([.answer(200, ["content-type": "text/event-stream"], Self.anthropicEvents)])
        let r = run(script, "/v1/messages", body: #"{"model":"kimi-k2.6","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
                    headers: ["x-api-key": "sk-the-clients-own-key", "anthropic-version": "2023-06-01", "anthropic-beta": "a,b",
                              "x-claude-code-session-id": "s-1"])
        #expect(r.status == 200 && r.text == Self.anthropicEvents.joined())
        let sent = script.requests[0]
        #expect(sent.url == "http://127.0.0.1:9/anthropic/v1/messages")
        #expect(sent.extraHeaders.contains { $0.hasPrefix("x-api-key: sk-upstream-") })
        #expect(sent.extraHeaders.contains("anthropic-version: 2023-06-01") && sent.extraHeaders.contains("anthropic-beta: a,b"))
        #expect(sent.extraHeaders.contains("x-claude-code-session-id: s-1"))
        #expect(!sent.extraHeaders.joined().contains("sk-the-clients-own-key") && sent.bearer != "sk-the-clients-own-key")
    }

    @Test func anAnthropicStreamThatBreaksAfterItsFirstEventIsNotRetriedAndEndsWithOneErrorEvent() {
        let script = ScriptedTransport([
            .answer(200, ["content-type": "text/event-stream"], Array(Self.anthropicEvents.prefix(3))),
            .answer(200, ["content-type": "text/event-stream"], Self.anthropicEvents),
        ])
        let r = run(script, "/v1/messages", body: #"{"model":"kimi-k2.6","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(script.requests.count == 1 && script.stepsLeft == 1)
        #expect(r.text.hasPrefix(Self.anthropicEvents.prefix(3).joined()))
        let tail = String(r.text.dropFirst(Self.anthropicEvents.prefix(3).joined().count))
        #expect(tail.hasPrefix("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""))
        #expect(tail.ranges(of: "event: error").count == 1)
    }

    @Test func anAnthropicAnswerPassesThroughByteForByte() {
        let answer = "{ \"id\" : \"msg_1\", \"type\":\"message\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"x\",\"signature\":\"Eq\\/+==\"}],\"usage\":{\"input_tokens\":5,\"output_tokens\":2} }"
        let script = ScriptedTransport([.answer(200, ["content-type": "application/json"], [answer])])
        let r = run(script, "/v1/messages", body: #"{"model":"kimi-k2.6","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(r.status == 200 && r.text == answer)
    }

    @Test func countTokensFallsBackToKimisTokenizerWhenTheUpstreamHasNone() {
        let script = ScriptedTransport([
            .answer(404, [:], [#"{"type":"error","error":{"type":"not_found_error","message":"Not found"}}"#]),
            .answer(200, [:], [#"{"code":0,"data":{"total_tokens":42}}"#]),
        ])
        let r = run(script, "/v1/messages/count_tokens", body: #"{"model":"kimi-k2.6","system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#)
        #expect(r.status == 200 && r.json == ["input_tokens": 42])
        #expect(script.requests.map(\.url) == ["http://127.0.0.1:9/anthropic/v1/messages/count_tokens", "http://127.0.0.1:9/v1/tokenizers/estimate-token-count"])
    }
}
