import Foundation
import Testing
@testable import KimiCore

/// W3C trace context, the samplers, the request's trace lifecycle, the
/// export queue and the OTLP encodings (the e2e tests decode the same
/// bytes with the official protobuf schema).
@Suite struct TraceContextTests {
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func aValidTraceparentIsReadAndWrittenBackTheSame() throws {
        let c = try #require(TraceContext.parse(traceparent: valid, tracestate: "congo=t61rcWkgMzE"))
        #expect(c.traceHigh == 0x4bf9_2f35_77b3_4da6 && c.traceLow == 0xa3ce_929d_0e0e_4736)
        #expect(c.spanID == 0x00f0_67aa_0ba9_02b7 && c.sampled && c.state == "congo=t61rcWkgMzE")
        #expect(c.traceparent == valid)
        #expect(c.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736")
    }

    @Test(arguments: [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 with more
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", // short
        "", "garbage",
    ])
    func anInvalidTraceparentIsNone(_ bad: String) {
        #expect(TraceContext.parse(traceparent: bad, tracestate: "a=b") == nil)
    }

    @Test func aLaterVersionIsReadByItsFirstFields() throws {
        let c = try #require(TraceContext.parse(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-whatever", tracestate: nil))
        #expect(!c.sampled && c.spanID == 0x00f0_67aa_0ba9_02b7)
    }

    @Test func anOversizedOrUnsafeTracestateIsDropped() throws {
        #expect(try #require(TraceContext.parse(traceparent: valid, tracestate: String(repeating: "a", count: 513))).state == "")
        #expect(try #require(TraceContext.parse(traceparent: valid, tracestate: "a=b\r\nX: y")).state == "")
    }
}

@Suite struct TraceSamplerTests {
    @Test func theSpecsNamesParseAndAnUnknownOneIsRefusedByName() throws {
        #expect(try TraceSampler.parse("always_on", arg: "", key: "otel.sampler") == .alwaysOn)
        #expect(try TraceSampler.parse("parentbased_traceidratio", arg: "0.25", key: "otel.sampler") == .parentBased(root: .ratio(0.25)))
        #expect(try TraceSampler.parse("traceidratio", arg: "", key: "otel.sampler") == .ratio(1))
        let e = #expect(throws: ConfigError.self) { try TraceSampler.parse("sometimes", arg: "", key: "otel.sampler") }
        #expect(e?.description.contains("otel.sampler") == true)
        #expect(throws: ConfigError.self) { try TraceSampler.parse("traceidratio", arg: "1.5", key: "otel.sampler") }
    }

    @Test func aRatioSamplesItsShareOfTraceIDsTheSameWayEveryTime() {
        let s = TraceSampler.ratio(0.25)
        var g = SystemRandomNumberGenerator()
        let ids = (0..<20_000).map { _ in g.next() as UInt64 }
        let share = Double(ids.filter { s.sample(parent: nil, traceLow: $0) }.count) / Double(ids.count)
        #expect(abs(share - 0.25) < 0.02)
        #expect(ids.allSatisfy { s.sample(parent: nil, traceLow: $0) == s.sample(parent: nil, traceLow: $0) })
    }

    @Test func parentBasedFollowsTheParentsFlagAndTheRootDecidesWithout() {
        let s = TraceSampler.parentBased(root: .alwaysOff)
        let sampled = TraceContext(traceHigh: 1, traceLow: 2, spanID: 3, flags: 1)
        #expect(s.sample(parent: sampled, traceLow: 2))
        #expect(!s.sample(parent: TraceContext(traceHigh: 1, traceLow: 2, spanID: 3, flags: 0), traceLow: 2))
        #expect(!s.sample(parent: nil, traceLow: 2))
    }
}

@Suite struct RequestTraceTests {
    final class Counter: @unchecked Sendable { var n: UInt64 = 0x100; func next() -> UInt64 { n += 1; return n } }

    func trace(parent: TraceContext? = nil, sampler: TraceSampler = .parentBased(root: .alwaysOn)) -> RequestTrace {
        let c = Counter()
        return RequestTrace(parent: parent, sampler: sampler, random: c.next, nowUnixNanos: 1_000_000_000_000, nowMonoNanos: 5_000)
    }

    func ending(_ status: Int = 200) -> RequestTrace.Ending {
        var e = RequestTrace.Ending(method: "POST", route: "/v1/chat/completions", path: "/v1/chat/completions", status: status,
                                    requestID: "rid", clientAddress: "10.0.0.1")
        e.keyName = "team"
        e.usage = (12, 7, 4)
        return e
    }

    @Test func aContinuedTraceNestsServerUnderTheClientAndEachAttemptUnderTheServer() {
        let parent = TraceContext(traceHigh: 0xAA, traceLow: 0xBB, spanID: 0xCC, flags: 1, state: "v=1")
        var t = trace(parent: parent)
        #expect(t.upstreamTraceparent.hasSuffix("-\(TraceContext.hex(t.spanID))-01"))
        t.request = GenAIRequestFacts(model: "kimi-k2", stream: false, maxTokens: 100, dialect: .openAI)
        t.beginAttempt(spanID: 0x1111, keyName: "key-a", now: 6_000)
        t.noteUpstream(method: "POST", url: "https://api.moonshot.ai/v1/chat/completions")
        #expect(t.upstreamTraceparent == "00-00000000000000aa00000000000000bb-0000000000001111-01")
        t.endAttempt(now: 7_000, errorType: "engine_overloaded")
        t.beginAttempt(spanID: 0x2222, keyName: "key-b", now: 8_000)
        #expect(t.upstreamTraceparent.contains("-0000000000002222-"))
        t.response.observe(answer: try! JSON.parse(#"{"id":"cmpl-1","model":"kimi-k2-0905","choices":[{"finish_reason":"stop","message":{"content":"hi"}}]}"#),
                           dialect: .openAI, keepText: false)
        t.endAttempt(now: 9_000, errorType: nil)
        let spans = t.spans(ending(), nowMono: 10_000)
        #expect(spans.map(\.kind) == [.client, .client, .server])
        let (first, second, server) = (spans[0], spans[1], spans[2])
        #expect(server.parentSpanID == 0xCC && server.traceState == "v=1" && server.traceLow == 0xBB)
        #expect(first.parentSpanID == server.spanID && second.parentSpanID == server.spanID)
        #expect(first.name == "chat kimi-k2" && first.error != nil && first.attribute("error.type") == .string("engine_overloaded"))
        #expect(first.attribute("gen_ai.response.id") == nil, "the answer belongs to the attempt that got it")
        #expect(second.attribute("gen_ai.response.id") == .string("cmpl-1") && second.attribute("gen_ai.response.model") == .string("kimi-k2-0905"))
        #expect(second.attribute("gen_ai.response.finish_reasons") == .strings(["stop"]))
        #expect(second.attribute("gen_ai.usage.cache_read.input_tokens") == .int(4) && second.attribute("gen_ai.usage.input_tokens") == .int(12))
        #expect(second.attribute("server.address") == nil, "no URL noted for the second attempt")
        #expect(first.attribute("server.address") == .string("api.moonshot.ai") && first.attribute("server.port") == .int(443))
        #expect(second.attribute("kimi_gateway.attempt") == .int(2) && second.attribute("kimi_gateway.upstream_key") == .string("key-b"))
        #expect(first.attribute("gen_ai.output.messages") == nil && first.attribute("gen_ai.input.messages") == nil)
        // Monotonic times placed on the wall clock of the start.
        #expect(server.startUnixNanos == 1_000_000_000_000 && server.endUnixNanos == 1_000_000_005_000)
        #expect(first.startUnixNanos == 1_000_000_001_000 && first.endUnixNanos == 1_000_000_002_000)
        #expect(server.attribute("http.route") == .string("/v1/chat/completions") && server.error == nil)
    }

    @Test func anUnsampledTraceHasNoSpansButPassesItsContextOn() {
        var t = trace(parent: TraceContext(traceHigh: 1, traceLow: 2, spanID: 3, flags: 0))
        t.beginAttempt(spanID: 9, keyName: "k", now: 6_000)
        #expect(t.upstreamTraceparent == "00-00000000000000010000000000000002-0000000000000009-00")
        #expect(t.spans(ending(), nowMono: 7_000).isEmpty)
    }

    @Test func aRootTraceHasAFreshNonzeroIDAndNoParent() {
        let t = trace()
        #expect(t.traceLow != 0 && t.parentSpanID == 0 && t.spanID != 0 && t.sampled)
        #expect(t.spans(ending(503), nowMono: 6_000).last?.error == "HTTP 503")
        #expect(t.spans(ending(429), nowMono: 6_000).last?.error == nil, "a 4xx is not the server's error")
    }

    @Test func aStreamsFirstChunkIsTimedFromItsAttemptsStart() {
        var t = trace()
        t.request = GenAIRequestFacts(model: "m", stream: true, maxTokens: nil, dialect: .openAI)
        t.beginAttempt(spanID: 7, keyName: "k", now: 1_000_000_000)
        t.firstChunk(now: 1_250_000_000)
        t.firstChunk(now: 1_900_000_000)
        t.endAttempt(now: 2_000_000_000, errorType: nil)
        #expect(t.spans(ending(), nowMono: 2_000_000_000)[0].attribute("gen_ai.response.time_to_first_chunk") == .double(0.25))
    }

    @Test func contentGoesOutOnlyWhenCapturedInTheConventionsPartsShape() throws {
        var t = trace()
        t.request = GenAIRequestFacts(model: "m", stream: false, maxTokens: nil, dialect: .anthropic)
        t.beginAttempt(spanID: 7, keyName: "k", now: 6_000)
        t.response.observe(answer: try JSON.parse(#"{"id":"msg_1","model":"m","stop_reason":"end_turn","content":[{"type":"text","text":"Hello"}]}"#),
                           dialect: .anthropic, keepText: true)
        t.endAttempt(now: 7_000, errorType: nil)
        var e = ending()
        e.captureOutput = true
        e.inputMessages = RequestTrace.inputMessages(body: try JSON.parse(#"{"system":"sys","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image"}]}]}"#))
        let client = t.spans(e, nowMono: 8_000)[0]
        #expect(client.attribute("gen_ai.input.messages") == .string(#"[{"role":"system","parts":[{"type":"text","content":"sys"}]},{"role":"user","parts":[{"type":"text","content":"hi"},{"type":"image"}]}]"#))
        #expect(client.attribute("gen_ai.output.messages") == .string(#"[{"role":"assistant","parts":[{"type":"text","content":"Hello"}],"finish_reason":"end_turn"}]"#))
        #expect(client.attribute("gen_ai.response.id") == .string("msg_1"))
    }
}

@Suite struct GenAIResponseFactsTests {
    @Test func openAIChunksGiveTheIDOnceTheFinishReasonsAndTheText() throws {
        var f = GenAIResponseFacts()
        for c in [#"{"id":"c1","model":"m","choices":[{"delta":{"content":"He"},"finish_reason":null}]}"#,
                  #"{"id":"c1","model":"m","choices":[{"delta":{"content":"llo"},"finish_reason":"length"}]}"#] {
            f.observe(chunk: try JSON.parse(c), dialect: .openAI, keepText: true)
        }
        #expect(f.id == "c1" && f.model == "m" && f.finishReasons == ["length"] && f.text == "Hello")
    }

    @Test func anthropicEventsGiveTheMessagesIDAndItsStopReason() throws {
        var f = GenAIResponseFacts()
        for c in [#"{"type":"message_start","message":{"id":"msg_9","model":"kimi-k2"}}"#,
                  #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
                  #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
                  #"{"type":"message_delta","delta":{"stop_reason":"max_tokens"}}"#] {
            f.observe(chunk: try JSON.parse(c), dialect: .anthropic, keepText: true)
        }
        #expect(f.id == "msg_9" && f.model == "kimi-k2" && f.finishReasons == ["max_tokens"] && f.text == "Hi")
    }

    @Test func capturedTextStopsAtItsBoundOnACharacter() throws {
        var f = GenAIResponseFacts()
        let piece = String(repeating: "é", count: 1000) // 2,000 bytes
        for _ in 0..<20 { f.observe(chunk: try JSON.parse(#"{"choices":[{"delta":{"content":"\#(piece)"}}]}"#), dialect: .openAI, keepText: true) }
        #expect(f.textTruncated && f.text.utf8.count <= GenAIResponseFacts.maxText && f.text.utf8.count > GenAIResponseFacts.maxText - 2)
    }
}

@Suite struct SpanQueueTests {
    @Test func anItemBeyondTheCapacityIsDroppedAndItsSpansCounted() {
        var q = SpanQueue<Int>()
        #expect(q.offer(1, spans: 2, capacity: 4, now: 0) == 0)
        #expect(q.offer(2, spans: 2, capacity: 4, now: 0) == 0)
        #expect(q.offer(3, spans: 3, capacity: 4, now: 0) == 3)
        #expect(q.items == [1, 2] && q.count == 4)
    }

    func sent(_ n: SpanQueue<Int>.Next) -> [Int]? { if case let .send(items) = n { return items } else { return nil } }
    func waits(_ n: SpanQueue<Int>.Next) -> UInt64?? { if case let .wait(until) = n { return .some(until) } else { return nil } }

    @Test func aBatchGoesWhenFullWhenItsOldestWaitedTheDelayOrWhileDraining() {
        var q = SpanQueue<Int>()
        _ = q.offer(1, spans: 1, capacity: 10, now: 1_000)
        #expect(waits(q.next(now: 1_500, batchSize: 3, delayNanos: 1_000, draining: false)) == .some(2_000))
        _ = q.offer(2, spans: 2, capacity: 10, now: 1_600)
        _ = q.offer(3, spans: 2, capacity: 10, now: 1_600)
        #expect(q.batchReady(batchSize: 3))
        // Whole items up to the batch's size: 1 + 2 spans, not the third item.
        #expect(sent(q.next(now: 1_700, batchSize: 3, delayNanos: 1_000, draining: false)) == [1, 2])
        // What is left waited since the first offer: it is not held back another delay.
        #expect(sent(q.next(now: 2_000, batchSize: 3, delayNanos: 1_000, draining: false)) == [3])
        #expect(waits(q.next(now: 2_000, batchSize: 3, delayNanos: 1_000, draining: false)) == .some(nil))
        _ = q.offer(4, spans: 5, capacity: 10, now: 3_000)
        #expect(sent(q.next(now: 3_001, batchSize: 3, delayNanos: 1_000, draining: true)) == [4], "one item larger than a batch still goes")
        #expect(q.count == 0 && q.isEmpty)
    }
}

@Suite struct OTLPEncodingTests {
    let span = SpanData(traceHigh: 0x0102_0304_0506_0708, traceLow: 0x090A_0B0C_0D0E_0F10, spanID: 0x1112_1314_1516_1718, parentSpanID: 0,
                        name: "GET /health", kind: .server, startUnixNanos: 5, endUnixNanos: 9,
                        attributes: [.int("http.response.status_code", -1), SpanAttribute("ok", .bool(true))], error: "HTTP 500")

    @Test func protobufWritesTheFieldsAtTheirNumbers() {
        let w = ProtoWriter()
        var sink = ProtobufSpanSink(w)
        span.emit(into: &sink)
        // ScopeSpans.spans (2), its length, then the span.
        let all = w.bytes
        var (length, shift, at) = (0, 0, 1)
        while all[at] & 0x80 != 0 { length |= Int(all[at] & 0x7F) << shift; shift += 7; at += 1 }
        length |= Int(all[at]) << shift
        #expect(all[0] == 0x12 && length == all.count - at - 1)
        let b = Array(all.dropFirst(at + 1))
        // trace_id (1, bytes 16), span_id (2, bytes 8), no parent (4) for a root.
        #expect(Array(b.prefix(18)) == [0x0A, 16] + (1...16).map { UInt8($0) })
        #expect(Array(b[18..<28]) == [0x12, 8] + (0x11...0x18).map { UInt8($0) })
        #expect(!b.contains(0x22) || b.firstIndex(of: 0x22)! > 28)
        // kind SERVER (6, varint 2); start (7, fixed64 little-endian).
        let kind = b.firstIndex(of: 0x30)!
        #expect(b[kind + 1] == 2 && b[kind + 2] == 0x39 && Array(b[(kind + 3)..<(kind + 11)]) == [5, 0, 0, 0, 0, 0, 0, 0])
        // A negative int64 is ten varint bytes (two's complement), as protobuf says.
        var v = ProtoWriter()
        OTLPEncoding.anyValue(.int(-1), &v)
        #expect(v.bytes == [0x18] + Array(repeating: 0xFF, count: 9) + [0x01])
        // flags (16, fixed32): sampled, and "has is-remote" set.
        #expect(Array(b.suffix(6)) == [0x85, 0x01, 0x01, 0x01, 0x00, 0x00])
    }

    @Test func aFinishedTraceEncodesStraightToTheSameBytesAsThroughSpanData() throws {
        var t = RequestTrace(parent: TraceContext(traceHigh: 7, traceLow: 8, spanID: 9, flags: 1, state: "a=b"), sampler: .alwaysOn,
                             random: { 0x55 }, nowUnixNanos: 1_000, nowMonoNanos: 10)
        t.request = GenAIRequestFacts(model: "kimi-k2", stream: false, maxTokens: 5, dialect: .openAI)
        t.beginAttempt(spanID: 0x66, keyName: "k", now: 20)
        t.noteUpstream(method: "POST", url: "https://api.moonshot.ai/v1/chat/completions")
        t.answer = Array(#"{"id":"c","model":"kimi-k2","choices":[{"finish_reason":"stop"}]}"#.utf8)
        t.endAttempt(now: 30, errorType: nil)
        var end = RequestTrace.Ending(method: "POST", route: "/v1/chat/completions", path: "/v1/chat/completions", status: 200, requestID: "r", clientAddress: "1.2.3.4")
        end.usage = (3, 4, nil)
        let f = FinishedTrace(trace: t, ending: end, endMono: 40)
        let scope = OTLPEncoding.Scope(name: "s", version: "1")
        let direct = OTLPEncoding.protobuf(resource: [.string("service.name", "x")], scope: scope) { f.emit(into: &$0) }
        #expect(direct == OTLPEncoding.protobuf(f.spans(), resource: [.string("service.name", "x")], scope: scope))
        #expect(f.spans().first?.attribute("gen_ai.response.finish_reasons") == .strings(["stop"]))
    }

    @Test func aBatchWhoseAttemptsWentToDifferentUpstreamsNamesEachOnesServer() throws {
        func finished(_ url: String, span: UInt64) -> FinishedTrace {
            var t = RequestTrace(parent: nil, sampler: .alwaysOn, random: { span }, nowUnixNanos: 1_000, nowMonoNanos: 10)
            t.beginAttempt(spanID: span + 1, keyName: "k", now: 20)
            t.noteUpstream(method: "GET", url: url)
            t.endAttempt(now: 30, errorType: nil)
            return FinishedTrace(trace: t, ending: .init(method: "GET", route: "/v1/models", path: "/v1/models", status: 200, requestID: "r", clientAddress: ""),
                                 endMono: 40)
        }
        // The same URL twice (the sink's remembered parts), then another, then the first again.
        let batch = [finished("https://api.moonshot.ai/v1/models", span: 3), finished("https://api.moonshot.ai/v1/models", span: 5),
                     finished("http://127.0.0.1:8099/v1/models", span: 7), finished("https://api.moonshot.ai/v1/models", span: 9)]
        let scope = OTLPEncoding.Scope(name: "s", version: "1")
        let direct = OTLPEncoding.protobuf(resource: [], scope: scope) { sink in for f in batch { f.emit(into: &sink) } }
        let spans = batch.flatMap { $0.spans() }
        #expect(direct == OTLPEncoding.protobuf(spans, resource: [], scope: scope))
        let clients = spans.filter { $0.kind == .client }
        #expect(clients.map { $0.attribute("server.port") } == [.int(443), .int(443), .int(8099), .int(443)])
        #expect(clients[2].attribute("server.address") == .string("127.0.0.1") && clients[2].name == "GET /v1/models")
    }

    @Test func jsonSpellsIDsInHexInt64sAsStringsAndEnumsAsNumbers() throws {
        let doc = try JSON.parse(OTLPEncoding.json([span], resource: [.string("service.name", "gw")], scope: .init(name: "kimi-gateway", version: "1")))
        let s = try #require(doc["resourceSpans"]?[0]?["scopeSpans"]?[0]?["spans"]?[0])
        #expect(s["traceId"]?.stringValue == "0102030405060708090a0b0c0d0e0f10" && s["spanId"]?.stringValue == "1112131415161718")
        #expect(s["parentSpanId"] == nil && s["kind"]?.intValue == 2 && s["startTimeUnixNano"]?.stringValue == "5")
        #expect(s["attributes"]?[0]?["value"]?["intValue"]?.stringValue == "-1")
        #expect(s["status"]?["code"]?.intValue == 2 && s["status"]?["message"]?.stringValue == "HTTP 500")
        #expect(doc["resourceSpans"]?[0]?["resource"]?["attributes"]?[0]?["value"]?["stringValue"]?.stringValue == "gw")
    }
}

@Suite struct OTelConfigTests {
    @Test func theStandardVariablesTurnTracingOnAndTheTracesEndpointWins() throws {
        let c = try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_SERVICE_NAME": "edge",
                                                    "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored,team=a%2Cb", "OTEL_TRACES_SAMPLER": "traceidratio",
                                                    "OTEL_TRACES_SAMPLER_ARG": "0.5", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t,x-a=1",
                                                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"]).validated()
        #expect(c.otel.enabled && c.otel.tracesURL == "http://collector:4318/v1/traces" && c.otel.protocolName == .json)
        #expect(c.otel.parsedSampler == .ratio(0.5) && c.otel.parsedHeaders == ["authorization: Bearer t", "x-a: 1"])
        #expect(c.otel.resource == [.string("service.name", "edge"), .string("team", "a,b")])
        let t = try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:9/traces"]).validated()
        #expect(t.otel.tracesURL == "http://b:9/traces")
    }

    @Test func theTracesOwnHeadersProtocolAndTimeoutWinOverTheGenericOnes() throws {
        let c = try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
                                                    "OTEL_EXPORTER_OTLP_HEADERS": "x-a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-b=2",
                                                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
                                                    "OTEL_EXPORTER_OTLP_TIMEOUT": "9000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500"]).validated()
        #expect(c.otel.parsedHeaders == ["x-b: 2"] && c.otel.protocolName == .json && c.otel.timeoutMs == 1500)
        let generic = try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_TIMEOUT": "9000"])
        #expect(generic.otel.timeoutMs == 9000)
        let bad = #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"]) }
        #expect(bad?.key == "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    }

    @Test func offWithoutAnEndpointOrWhenDisabled() throws {
        #expect(try !GatewayConfig().validated().otel.enabled)
        #expect(try !GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"]).validated().otel.enabled)
    }

    @Test func grpcAndBadValuesAreRefusedByName() throws {
        let grpc = #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"]) }
        #expect(grpc?.description.contains("grpc is not supported") == true)
        let url = #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"]).validated() }
        #expect(url?.description.contains("otel.endpoint") == true)
        #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["OTEL_EXPORTER_OTLP_HEADERS": "novalue"]).validated() }
        let file = #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"otel":{"maxQueueSize":2,"maxExportBatchSize":3}}"#.utf8)).validated() }
        #expect(file?.description.contains("otel.maxExportBatchSize") == true)
    }
}

@Suite struct AnswerSkimTests {
    @Test(arguments: [
        #"{"id":"c-1","object":"chat.completion","model":"kimi-k2","choices":[{"index":0,"message":{"role":"assistant","content":"{\"id\":\"no\"}","tool_calls":[{"id":"call_1","type":"function"}]},"finish_reason":"tool_calls"},{"index":1,"message":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}"#,
        #"{ "choices" : [ { "finish_reason" : "tool_calls", "message" : { "tool_calls" : [ { "id" : "call_1" } ] } } , { "finish_reason" : "stop" } ] , "model" : "kimi-k2" , "id" : "c-1" }"#,
        // Text ending in an escaped backslash, and escaped quotes beside backslashes, in skipped values.
        #"{"id":"c-1","model":"kimi-k2","choices":[{"message":{"content":"ends in a backslash \\","x":"\\\"q\\\"\\"},"finish_reason":"tool_calls"},{"finish_reason":"stop","m":{"c":"\"}\""}}]}"#,
    ])
    func readsTheTopLevelIDAndModelAndEveryFinishReasonInAnySpelling(_ answer: String) throws {
        let f = try #require(AnswerSkim.openAI(Array(answer.utf8)))
        #expect(f.id == "c-1" && f.model == "kimi-k2" && f.finishReasons == ["tool_calls", "stop"])
        // The same as the parsed answer says.
        var parsed = GenAIResponseFacts()
        parsed.observe(answer: try JSON.parse(answer), dialect: .openAI, keepText: false)
        #expect(parsed.id == f.id && parsed.model == f.model && parsed.finishReasons == f.finishReasons)
    }

    @Test(arguments: [#"{"id":"a\"b","model":"m","choices":[]}"#, #"{"id":"a","choices":[{"finish_reason":"stop"}"#, "not json", ""])
    func anEscapeOrABrokenAnswerIsLeftToTheParser(_ answer: String) {
        #expect(AnswerSkim.openAI(Array(answer.utf8)) == nil)
    }

    @Test func theServerOfAnUpstreamURL() throws {
        let a = try #require(RequestTrace.server(of: "https://api.moonshot.ai/v1/files?x=1"))
        #expect(a.host == "api.moonshot.ai" && a.port == 443 && a.path == "/v1/files")
        let b = try #require(RequestTrace.server(of: "http://[::1]:8080/v1"))
        #expect(b.host == "::1" && b.port == 8080 && b.path == "/v1")
        #expect(RequestTrace.server(of: "http://127.0.0.1:9")?.path == "/")
    }
}

@Suite struct ProtoWriterTests {
    @Test func aKeyValueWithPrecomputedLengthsIsTheNestedEncoding() {
        // The same bytes as writing each nested message into its own buffer.
        func nested(_ a: SpanAttribute) -> [UInt8] {
            func lengthDelimited(_ field: Int, _ body: [UInt8]) -> [UInt8] {
                var w = ProtoWriter(); w.bytes(field, body); return w.bytes
            }
            func any(_ v: SpanAttribute.Value) -> [UInt8] {
                var w = ProtoWriter()
                switch v {
                case let .strings(items): return lengthDelimited(5, items.flatMap { lengthDelimited(1, Array(any(.string($0)))) })
                default: OTLPEncoding.anyValue(v, &w); return w.bytes
                }
            }
            var key = ProtoWriter(); key.string(1, a.key)
            return lengthDelimited(9, key.bytes + lengthDelimited(2, any(a.value)))
        }
        let long = String(repeating: "x", count: 300)
        for a in [SpanAttribute.string("k", "v"), .int("n", -7), SpanAttribute("b", .bool(false)), SpanAttribute("d", .double(0.25)),
                  SpanAttribute("gen_ai.response.finish_reasons", .strings(["stop", long])), .string(long, long)] {
            var w = ProtoWriter()
            OTLPEncoding.attribute(9, a, &w)
            #expect(w.bytes == nested(a), "\(a.key.prefix(20))")
        }
    }

    @Test func varintsOfEveryLengthAreLittleEndianGroupsOfSevenBitsAcrossBufferGrowth() {
        func reference(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            repeat {
                out.append(UInt8(v & 0x7F) | (v >= 0x80 ? 0x80 : 0))
                v >>= 7
            } while v > 0
            return out
        }
        // A tiny first buffer: most writes land across a growth.
        var w = ProtoWriter(capacity: 1)
        var expected: [UInt8] = []
        for shift in 0..<64 {
            for v in [UInt64(1) << shift, (UInt64(1) << shift) &- 1, UInt64.max >> (63 - shift)] {
                w.raw(v)
                expected += reference(v)
            }
        }
        #expect(w.bytes == expected)
        #expect(reference(300) == [0xAC, 0x02] && reference(UInt64.max).count == 10)
    }

    @Test func aSpanNameInPartsIsWrittenAsTheJoinedString() {
        var parts = ProtoWriter(), joined = ProtoWriter()
        parts.name(5, SpanName("chat ", "kimi-k2", ""))
        joined.string(5, "chat kimi-k2")
        #expect(parts.bytes == joined.bytes)
        var long = ProtoWriter(), longJoined = ProtoWriter()
        let route = "/" + String(repeating: "r", count: 200)
        long.name(5, SpanName("POST", " ", route))
        longJoined.string(5, "POST " + route)
        #expect(long.bytes == longJoined.bytes && SpanName("POST", " ", route).joined == "POST " + route)
    }

    @Test func aNestedMessageLongerThan127BytesGetsATwoByteLength() {
        var w = ProtoWriter()
        w.message(2) { $0.string(1, String(repeating: "a", count: 200)) }
        #expect(Array(w.bytes.prefix(5)) == [0x12, 0xCB, 0x01, 0x0A, 0xC8])
        #expect(w.bytes.count == 3 + 3 + 200)
    }
}

@Suite struct CapturedContentBoundsTests {
    @Test func inputMessagesKeepTheLatestWithinTheBoundEachPartCut() throws {
        let big = String(repeating: "é", count: 20_000) // 40,000 bytes
        let messages: [JSON] = (0..<10).map { i in .object([("role", .string(i % 2 == 0 ? "user" : "assistant")), ("content", .string("m\(i) " + big))]) }
        let text = try #require(RequestTrace.inputMessages(body: .object([("messages", .array(messages))]), maxPartBytes: 16 << 10, maxBytes: 64 << 10))
        #expect(text.utf8.count <= 64 << 10)
        let parsed = try JSON.parse(text)
        let kept = try #require(parsed.arrayValue)
        #expect(kept.count == 3, "three cut messages of ~16 KiB fit in 64 KiB")
        #expect(kept.last?["parts"]?[0]?["content"]?.stringValue?.hasPrefix("m9 ") == true, "the latest are kept")
        #expect(kept.allSatisfy { ($0["parts"]?[0]?["content"]?.stringValue?.utf8.count ?? 0) <= 16 << 10 })
    }
}
