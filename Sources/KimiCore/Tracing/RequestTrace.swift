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
    public var answer: [UInt8]?
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
        guard sampled else { return [] }
        func unix(_ mono: UInt64) -> UInt64 { startUnixNanos &+ (mono &- startMonoNanos) }
        var out: [SpanData] = []
        for (i, a) in attempts.enumerated() {
            let last = i == attempts.count - 1
            var attrs: [SpanAttribute] = []
            attrs.reserveCapacity(24)
            var name = a.method.isEmpty ? "upstream" : a.method
            if let u = Self.server(of: a.url) {
                attrs.append(.string("server.address", u.host))
                attrs.append(.int("server.port", u.port))
                if request == nil { name += " " + u.path }
                attrs.append(.string("http.request.method", a.method))
            }
            attrs.append(.int("kimi_gateway.attempt", a.number))
            attrs.append(.string("kimi_gateway.upstream_key", a.keyName))
            if let r = request {
                name = "chat " + r.model
                attrs += [.string("gen_ai.operation.name", "chat"), .string("gen_ai.provider.name", "moonshot_ai"),
                          .string("gen_ai.request.model", r.model), SpanAttribute("gen_ai.request.stream", .bool(r.stream))]
                if let m = r.maxTokens { attrs.append(.int("gen_ai.request.max_tokens", m)) }
                if let first = a.firstChunkMono, r.stream {
                    attrs.append(SpanAttribute("gen_ai.response.time_to_first_chunk", .double(Double(first &- a.startMono) / 1e9)))
                }
                if last, a.errorType == nil {
                    if let v = response.id { attrs.append(.string("gen_ai.response.id", v)) }
                    if let v = response.model { attrs.append(.string("gen_ai.response.model", v)) }
                    if !response.finishReasons.isEmpty { attrs.append(SpanAttribute("gen_ai.response.finish_reasons", .strings(response.finishReasons))) }
                    if let u = end.usage {
                        attrs.append(.int("gen_ai.usage.input_tokens", u.input))
                        attrs.append(.int("gen_ai.usage.output_tokens", u.output))
                        if let c = u.cached { attrs.append(.int("gen_ai.usage.cache_read.input_tokens", c)) }
                    }
                    if end.captureOutput { attrs.append(.string("gen_ai.output.messages", outputMessages)) }
                }
                if let m = end.inputMessages { attrs.append(.string("gen_ai.input.messages", m)) }
            }
            if last, end.clientLeft { attrs.append(SpanAttribute("kimi_gateway.client_left", .bool(true))) }
            if let e = a.errorType { attrs.append(.string("error.type", e)) }
            out.append(SpanData(traceHigh: traceHigh, traceLow: traceLow, spanID: a.spanID, parentSpanID: spanID, traceState: traceState, flags: flags,
                                name: name, kind: .client, startUnixNanos: unix(a.startMono), endUnixNanos: unix(a.endMono ?? nowMono),
                                attributes: attrs, error: a.errorType.map { "upstream attempt failed: \($0)" }))
        }
        var attrs: [SpanAttribute] = [.string("http.request.method", end.method), .string("url.path", end.path),
                                      .int("http.response.status_code", end.status), .string("kimi_gateway.request_id", end.requestID)]
        if !end.route.isEmpty { attrs.append(.string("http.route", end.route)) }
        if !end.clientAddress.isEmpty { attrs.append(.string("client.address", end.clientAddress)) }
        if let k = end.keyName { attrs.append(.string("kimi_gateway.key.name", k)) }
        if end.status >= 500 { attrs.append(.string("error.type", String(end.status))) }
        out.append(SpanData(traceHigh: traceHigh, traceLow: traceLow, spanID: spanID, parentSpanID: parentSpanID, traceState: traceState, flags: flags,
                            name: end.route.isEmpty ? end.method : end.method + " " + end.route, kind: .server,
                            startUnixNanos: startUnixNanos, endUnixNanos: unix(nowMono), attributes: attrs,
                            error: end.status >= 500 ? "HTTP \(end.status)" : nil))
        return out
    }

    /// The host, port and path (no query) of an upstream URL the gateway
    /// built from a validated base (`URLParts` checked it at load).
    static func server(of url: String) -> (host: String, port: Int, path: String)? {
        let u = url.utf8
        guard let colon = u.firstIndex(of: 0x3A), u[u.index(after: colon)...].starts(with: "//".utf8) else { return nil }
        let https = url[..<colon] == "https"
        let authorityStart = u.index(colon, offsetBy: 3)
        let authorityEnd = u[authorityStart...].firstIndex { $0 == 0x2F || $0 == 0x3F } ?? u.endIndex
        let authority = url[authorityStart..<authorityEnd]
        var host = Substring(authority), port = https ? 443 : 80
        if let c = authority.utf8.lastIndex(of: 0x3A), !authority.hasSuffix("]"), let p = Int(authority[authority.index(after: c)...]) {
            (host, port) = (authority[..<c], p)
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let pathEnd = u[authorityEnd...].firstIndex(of: 0x3F) ?? u.endIndex
        return (String(host), port, authorityEnd == pathEnd ? "/" : String(url[authorityEnd..<pathEnd]))
    }

    /// `gen_ai.output.messages`: the answer's text as one assistant message
    /// (the conventions' "parts" shape).
    var outputMessages: String {
        var message: [(String, JSON)] = [("role", .string("assistant")),
                                         ("parts", .array([.object([("type", .string("text")), ("content", .string(response.text))])]))]
        if let r = response.finishReasons.first { message.append(("finish_reason", .string(r))) }
        return JSON.array([.object(message)]).serialized()
    }

    /// `gen_ai.input.messages` from a chat request's body, either dialect:
    /// each message's role and its text parts (other parts by their type
    /// only); Anthropic's `system` first. nil when the body has no messages.
    public static func inputMessages(body: JSON) -> String? {
        guard let messages = body["messages"]?.arrayValue else { return nil }
        func parts(_ content: JSON?) -> JSON {
            if let s = content?.stringValue { return .array([.object([("type", .string("text")), ("content", .string(s))])]) }
            return .array((content?.arrayValue ?? []).map { p in
                if let t = p["text"]?.stringValue { return .object([("type", .string("text")), ("content", .string(t))]) }
                return .object([("type", .string(p["type"]?.stringValue ?? "unknown"))])
            })
        }
        var out: [JSON] = []
        if let system = body["system"] { out.append(.object([("role", .string("system")), ("parts", parts(system))])) }
        for m in messages { out.append(.object([("role", .string(m["role"]?.stringValue ?? "user")), ("parts", parts(m["content"]))])) }
        return JSON.array(out).serialized()
    }
}

/// What a request leaves for the exporter: its trace and how it ended,
/// turned into spans on the exporter's thread — the answer's facts read,
/// the attributes built and encoded there, not while the client waits.
public struct FinishedTrace: Sendable {
    public var trace: RequestTrace
    public var ending: RequestTrace.Ending
    public var endMono: UInt64
    /// The request's body, for `gen_ai.input.messages` (content captured only).
    public var requestBody: [UInt8]?

    public init(trace: RequestTrace, ending: RequestTrace.Ending, endMono: UInt64, requestBody: [UInt8]? = nil) {
        (self.trace, self.ending, self.endMono, self.requestBody) = (trace, ending, endMono, requestBody)
    }

    /// The server span and one client span per attempt.
    public var spanCount: Int { trace.attempts.count + 1 }

    public func spans() -> [SpanData] {
        var t = trace
        var end = ending
        if let body = t.answer, let request = t.request {
            if request.dialect == .openAI, !end.captureOutput, let f = AnswerSkim.openAI(body) {
                (t.response.id, t.response.model, t.response.finishReasons) = (f.id, f.model, f.finishReasons)
            } else if let answer = try? JSON.parse(body) {
                t.response.observe(answer: answer, dialect: request.dialect, keepText: end.captureOutput)
            }
        }
        if let body = requestBody { end.inputMessages = (try? JSON.parse(body)).flatMap(RequestTrace.inputMessages(body:)) }
        return t.spans(end, nowMono: endMono)
    }
}
