/// One request's trace, from its arrival to its spans: a value the request
/// carries and changes at each step (arrival, each upstream attempt, the
/// first chunk, the answer's facts), and that turns into one SERVER span
/// and a CLIENT span per upstream attempt when the request ends.
///
/// The trace continues the client's (`traceparent`, W3C Trace Context §3.2)
/// when it sent one; the gateway's server span is the client span's child,
/// each attempt's client span the server span's, and each attempt sends
/// upstream a `traceparent` naming its own client span — also when the
/// request is not sampled (flags 00), so the context travels on.
///
/// Attributes follow the OpenTelemetry semantic conventions pinned in the
/// README (HTTP server spans of semantic-conventions v1.37.0; GenAI client
/// spans of semantic-conventions-genai v0.1.0).
public struct RequestTrace: Sendable {
    public let traceHigh: UInt64
    public let traceLow: UInt64
    /// The gateway's server span.
    public let spanID: UInt64
    /// The client's span, 0 when the request started the trace.
    public let parentSpanID: UInt64
    public let traceState: String
    public let sampled: Bool
    let startUnixNanos: UInt64
    let startMonoNanos: UInt64
    /// Set when a chat request is admitted: its attempts are GenAI spans.
    public var request: GenAIRequestFacts?
    public var response = GenAIResponseFacts()
    /// A whole answer whose facts are read later, off the request path
    /// (`FinishedTrace.spans`): keeping it is a reference, not a copy.
    /// Only answers up to `keptAnswerBytes` are kept (a larger one is read
    /// at once), so a full queue holds at most that much per trace.
    public var answer: [UInt8]?
    public static let keptAnswerBytes = 64 << 10
    public private(set) var attempts: [Attempt] = []

    /// One upstream attempt: its client span.
    public struct Attempt: Sendable, Equatable {
        public let spanID: UInt64
        /// 1 for the first, 2 for the first retry…
        public let number: Int
        /// The key pool entry's name (never the key).
        public let keyName: String
        let startMono: UInt64
        public var endMono: UInt64?
        public var method = ""
        public var url = ""
        /// The failure's class (`UpstreamAttempts.Failure.metricLabel`), nil when it worked.
        public var errorType: String?
        public var firstChunkMono: UInt64?
    }

    /// A request's trace: the parent's trace id when a valid `traceparent`
    /// came, else a fresh one; sampled as `sampler` says for that parent.
    /// `random` gives nonzero-enough 64-bit values (a zero is redrawn).
    public init(parent: TraceContext?, sampler: TraceSampler, random: () -> UInt64, nowUnixNanos: UInt64, nowMonoNanos: UInt64) {
        func nonzero() -> UInt64 {
            var v = random()
            while v == 0 { v = random() }
            return v
        }
        if let parent {
            (traceHigh, traceLow, parentSpanID, traceState) = (parent.traceHigh, parent.traceLow, parent.spanID, parent.state)
        } else {
            (traceHigh, traceLow, parentSpanID, traceState) = (random(), nonzero(), 0, "")
        }
        spanID = nonzero()
        sampled = sampler.sample(parent: parent, traceLow: traceLow)
        (startUnixNanos, startMonoNanos) = (nowUnixNanos, nowMonoNanos)
    }

    public var flags: UInt8 { sampled ? 1 : 0 }

    /// The `traceparent` the upstream gets: the current attempt's span
    /// (the server span's before any attempt), with this request's flags.
    public var upstreamTraceparent: String {
        TraceContext(traceHigh: traceHigh, traceLow: traceLow, spanID: attempts.last?.spanID ?? spanID, flags: flags).traceparent
    }

    public mutating func beginAttempt(spanID: UInt64, keyName: String, now: UInt64) {
        attempts.append(Attempt(spanID: spanID, number: attempts.count + 1, keyName: keyName, startMono: now))
    }

    /// What the current attempt sends (its span's name and server).
    public mutating func noteUpstream(method: String, url: String) {
        guard !attempts.isEmpty else { return }
        attempts[attempts.count - 1].method = method
        attempts[attempts.count - 1].url = url
    }

    public mutating func endAttempt(now: UInt64, errorType: String?) {
        guard let i = attempts.indices.last, attempts[i].endMono == nil else { return }
        attempts[i].endMono = now
        attempts[i].errorType = errorType
    }

    /// The first chunk of the answer's text reached the gateway (streams).
    public mutating func firstChunk(now: UInt64) {
        guard let i = attempts.indices.last, attempts[i].firstChunkMono == nil else { return }
        attempts[i].firstChunkMono = now
    }

    /// How the request ended, for the spans.
    public struct Ending: Sendable {
        public var method: String
        /// The matched route's pattern ("" when none matched).
        public var route: String
        public var path: String
        public var status: Int
        public var keyName: String?
        public var requestID: String
        public var clientAddress: String
        /// The upstream's usage (clamped), when it reported one.
        public var usage: (input: Int, output: Int, cached: Int?)?
        /// `gen_ai.input.messages` (captured content only).
        public var inputMessages: String?
        /// Whether `response.text` goes out as `gen_ai.output.messages`.
        public var captureOutput = false
        public var clientLeft = false
        public init(method: String, route: String, path: String, status: Int, requestID: String, clientAddress: String) {
            (self.method, self.route, self.path, self.status, self.requestID, self.clientAddress) = (method, route, path, status, requestID, clientAddress)
        }
    }

    /// The request's spans, client spans first: nothing when it is not sampled.
    public func spans(_ end: Ending, nowMono: UInt64) -> [SpanData] {
        var sink = SpanDataSink()
        emit(end, nowMono: nowMono, into: &sink)
        return sink.spans
    }

    /// The request's spans told to `sink`, client spans first; nothing when it is not sampled.
    public func emit<S: SpanSink>(_ end: Ending, nowMono: UInt64, into sink: inout S) {
        emit(end, response: response, nowMono: nowMono, into: &sink)
    }

    /// The spans with `response` for the answer's facts (read from a kept
    /// answer without copying the trace to change its own).
    func emit<S: SpanSink>(_ end: Ending, response: GenAIResponseFacts, nowMono: UInt64, into sink: inout S) {
        guard sampled else { return }
        func unix(_ mono: UInt64) -> UInt64 { startUnixNanos &+ (mono &- startMonoNanos) }
        for (i, a) in attempts.enumerated() {
            let last = i == attempts.count - 1
            let server = sink.server(of: a.url)
            let name: SpanName = if let r = request { SpanName("chat ", r.model) } else {
                SpanName(a.method.isEmpty ? "upstream" : a.method, server == nil ? "" : " ", server?.path ?? "")
            }
            sink.begin(SpanHead(traceHigh: traceHigh, traceLow: traceLow, spanID: a.spanID, parentSpanID: spanID, traceState: traceState, flags: flags,
                                name: name, kind: .client, startUnixNanos: unix(a.startMono), endUnixNanos: unix(a.endMono ?? nowMono)))
            if let u = server {
                sink.attribute("server.address", .string(u.host))
                sink.attribute("server.port", .int(u.port))
                sink.attribute("http.request.method", .string(a.method))
            }
            sink.attribute("kimi_gateway.attempt", .int(a.number))
            sink.attribute("kimi_gateway.upstream_key", .string(a.keyName))
            if let r = request {
                sink.attribute("gen_ai.operation.name", .string("chat"))
                sink.attribute("gen_ai.provider.name", .string("moonshot_ai"))
                sink.attribute("gen_ai.request.model", .string(r.model))
                sink.attribute("gen_ai.request.stream", .bool(r.stream))
                if let m = r.maxTokens { sink.attribute("gen_ai.request.max_tokens", .int(m)) }
                if let first = a.firstChunkMono, r.stream {
                    sink.attribute("gen_ai.response.time_to_first_chunk", .double(Double(first &- a.startMono) / 1e9))
                }
                if last, a.errorType == nil {
                    if let v = response.id { sink.attribute("gen_ai.response.id", .string(v)) }
                    if let v = response.model { sink.attribute("gen_ai.response.model", .string(v)) }
                    if !response.finishReasons.isEmpty { sink.attribute("gen_ai.response.finish_reasons", .strings(response.finishReasons)) }
                    if let u = end.usage {
                        sink.attribute("gen_ai.usage.input_tokens", .int(u.input))
                        sink.attribute("gen_ai.usage.output_tokens", .int(u.output))
                        if let c = u.cached { sink.attribute("gen_ai.usage.cache_read.input_tokens", .int(c)) }
                    }
                    if end.captureOutput { sink.attribute("gen_ai.output.messages", .string(Self.outputMessages(response))) }
                }
                if let m = end.inputMessages { sink.attribute("gen_ai.input.messages", .string(m)) }
            }
            if last, end.clientLeft { sink.attribute("kimi_gateway.client_left", .bool(true)) }
            if let e = a.errorType { sink.attribute("error.type", .string(e)) }
            sink.end(error: a.errorType.map { "upstream attempt failed: " + $0 })
        }
        sink.begin(SpanHead(traceHigh: traceHigh, traceLow: traceLow, spanID: spanID, parentSpanID: parentSpanID, traceState: traceState, flags: flags,
                            name: end.route.isEmpty ? SpanName(end.method) : SpanName(end.method, " ", end.route), kind: .server,
                            startUnixNanos: startUnixNanos, endUnixNanos: unix(nowMono)))
        sink.attribute("http.request.method", .string(end.method))
        sink.attribute("url.path", .string(end.path))
        sink.attribute("http.response.status_code", .int(end.status))
        sink.attribute("kimi_gateway.request_id", .string(end.requestID))
        if !end.route.isEmpty { sink.attribute("http.route", .string(end.route)) }
        if !end.clientAddress.isEmpty { sink.attribute("client.address", .string(end.clientAddress)) }
        if let k = end.keyName { sink.attribute("kimi_gateway.key.name", .string(k)) }
        if end.status >= 500 { sink.attribute("error.type", .string(String(end.status))) }
        sink.end(error: end.status >= 500 ? "HTTP \(end.status)" : nil)
    }

    /// The host, port and path (no query) of an upstream URL the gateway
    /// built from a validated base (`URLParts` checked it at load).
    static func server(of url: String) -> (host: String, port: Int, path: String)? {
        var url = url
        return url.withUTF8 { u -> (host: String, port: Int, path: String)? in
            // On the bytes: Substring and String slicing were ~6,800 instructions a call (callgrind).
            let n = u.count
            var i = 0
            while i < n, u[i] != 0x3A { i += 1 }
            guard i + 2 < n, u[i + 1] == 0x2F, u[i + 2] == 0x2F else { return nil }
            let https = i == 5 && u[4] == 0x73
            var a = i + 3, authorityEnd = a
            while authorityEnd < n, u[authorityEnd] != 0x2F, u[authorityEnd] != 0x3F { authorityEnd += 1 }
            var hostEnd = authorityEnd, port = https ? 443 : 80
            var c = authorityEnd - 1
            while c > a, u[c] >= 0x30, u[c] <= 0x39 { c -= 1 }
            if c > a, u[c] == 0x3A, c + 1 < authorityEnd {
                var p = 0
                for k in (c + 1)..<authorityEnd { p = p * 10 + Int(u[k] - 0x30) }
                (hostEnd, port) = (c, p)
            }
            if hostEnd - a >= 2, u[a] == 0x5B, u[hostEnd - 1] == 0x5D { a += 1; hostEnd -= 1 }
            var pathEnd = authorityEnd
            while pathEnd < n, u[pathEnd] != 0x3F { pathEnd += 1 }
            func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: u[r]), as: UTF8.self) }
            return (text(a..<hostEnd), port, pathEnd == authorityEnd ? "/" : text(authorityEnd..<pathEnd))
        }
    }

    /// `gen_ai.output.messages`: the answer's text as one assistant message
    /// (the conventions' "parts" shape).
    static func outputMessages(_ response: GenAIResponseFacts) -> String {
        var message: [(String, JSON)] = [("role", .string("assistant")),
                                         ("parts", .array([.object([("type", .string("text")), ("content", .string(response.text))])]))]
        if let r = response.finishReasons.first { message.append(("finish_reason", .string(r))) }
        return JSON.array([.object(message)]).serialized()
    }

    /// `gen_ai.input.messages` from a chat request's body, either dialect:
    /// each message's role and its text parts (other parts by their type
    /// only); Anthropic's `system` first. Bounded for the span: a part's
    /// text to `maxPartBytes`, the whole to `maxBytes` — the latest
    /// messages kept, the earliest left out. nil when the body has no messages.
    public static func inputMessages(body: JSON, maxPartBytes: Int = 16 << 10, maxBytes: Int = 64 << 10) -> String? {
        guard let messages = body["messages"]?.arrayValue else { return nil }
        func text(_ s: String) -> JSON {
            .object([("type", .string("text")), ("content", .string(GenAIResponseFacts.prefix(s, bytes: maxPartBytes)))])
        }
        func parts(_ content: JSON?) -> JSON {
            if let s = content?.stringValue { return .array([text(s)]) }
            return .array((content?.arrayValue ?? []).map { p in
                if let t = p["text"]?.stringValue { return text(t) }
                return .object([("type", .string(p["type"]?.stringValue ?? "unknown"))])
            })
        }
        var all: [JSON] = []
        if let system = body["system"] { all.append(.object([("role", .string("system")), ("parts", parts(system))])) }
        for m in messages { all.append(.object([("role", .string(m["role"]?.stringValue ?? "user")), ("parts", parts(m["content"]))])) }
        var kept: [[UInt8]] = []
        var size = 2
        for m in all.reversed() {
            let bytes = m.serializedBytes()
            guard size + bytes.count + 1 <= maxBytes else { break }
            kept.append(bytes)
            size += bytes.count + 1
        }
        var out: [UInt8] = [0x5B]
        for (i, m) in kept.reversed().enumerated() {
            if i > 0 { out.append(0x2C) }
            out += m
        }
        out.append(0x5D)
        return String(decoding: out, as: UTF8.self)
    }
}

/// What a request leaves for the exporter: its trace and how it ended,
/// turned into spans on the exporter's thread — the answer's facts read,
/// the attributes built and encoded there, not while the client waits.
public struct FinishedTrace: Sendable {
    public var trace: RequestTrace
    public var ending: RequestTrace.Ending
    public var endMono: UInt64
    public init(trace: RequestTrace, ending: RequestTrace.Ending, endMono: UInt64) {
        (self.trace, self.ending, self.endMono) = (trace, ending, endMono)
    }

    /// The server span and one client span per attempt.
    public var spanCount: Int { trace.attempts.count + 1 }

    public func spans() -> [SpanData] {
        var sink = SpanDataSink()
        tell(&sink)
        return sink.spans
    }

    /// The spans as protobuf: `tell` specialized for the protobuf sink in
    /// this module (called generically from another module it went through
    /// a witness table per attribute: ~3x the instructions, callgrind).
    public func emit(into sink: inout ProtobufSpanSink) { tell(&sink) }

    /// The spans told to `sink`, the answer's facts read first (skimmed
    /// when it is OpenAI's and no text is kept, else parsed).
    func tell<S: SpanSink>(_ sink: inout S) {
        let end = ending
        var response = trace.response
        if let body = trace.answer, let request = trace.request {
            if request.dialect == .openAI, !end.captureOutput, let f = AnswerSkim.openAI(body) {
                (response.id, response.model, response.finishReasons) = (f.id, f.model, f.finishReasons)
            } else if let answer = try? JSON.parse(body) {
                response.observe(answer: answer, dialect: request.dialect, keepText: end.captureOutput)
            }
        }
        trace.emit(end, response: response, nowMono: endMono, into: &sink)
    }
}
