import KimiCore

/// The request's trace at each step of the pipeline (`RequestTrace` holds
/// the rules; these are the places the pipeline tells it what happened).
extension RequestContext {
    /// Starts the trace when tracing is on: the client's `traceparent`
    /// continued, else a new trace; sampled per `otel.sampler`.
    func beginTrace(traceparent: String?, tracestate: String?) {
        guard config.otel.enabled else { return }
        trace = RequestTrace(parent: TraceContext.parse(traceparent: traceparent, tracestate: tracestate), sampler: config.otel.parsedSampler,
                             random: RequestID.random64,
                             nowUnixNanos: UInt64(max(0, Clock.wallMicros())) &* 1000 &- (Clock.monotonicNanos() &- startNanos), nowMonoNanos: startNanos)
    }

    /// A chat request was admitted: its attempts are GenAI client spans.
    func traceChat(_ capture: UsageCapture, maxTokens: Int?) {
        guard trace != nil else { return }
        trace!.request = GenAIRequestFacts(model: capture.model, stream: capture.stream, maxTokens: maxTokens,
                                           dialect: face == .anthropic ? .anthropic : .openAI)
    }

    /// Whether the answer's facts are worth reading (the request is sampled and a chat).
    var tracesAnswer: Bool { trace?.sampled == true && trace?.request != nil }

    /// A whole answer, for its id, model and finish reasons (and text,
    /// with content captured): kept by reference and read on the exporter's
    /// thread when it is small (a completion is), read now when it is
    /// larger, so a queue of traces never holds large answers.
    func traceAnswer(_ body: [UInt8]) {
        guard tracesAnswer else { return }
        if body.count <= RequestTrace.keptAnswerBytes {
            trace!.answer = body
        } else if let answer = try? JSON.parse(body) {
            trace!.response.observe(answer: answer, dialect: trace!.request!.dialect, keepText: config.otel.captureContent)
        }
    }

    /// One stream event's data: parsed only when it can say something the
    /// span lacks (the id and model come first, a finish reason last).
    func traceChunk(_ data: String) {
        guard tracesAnswer, data.utf8.count < 64 << 10, data != "[DONE]" else { return }
        let keepText = config.otel.captureContent
        guard keepText || trace!.response.id == nil || ChunkText.mayHold(data, "finish_reason") || ChunkText.mayHold(data, "stop_reason"),
              let chunk = try? JSON.parse(data) else { return }
        trace!.response.observe(chunk: chunk, dialect: trace!.request!.dialect, keepText: keepText)
    }

    /// Ends the trace and queues its spans for export.
    func finishTrace(_ services: Services, status: Int, clientLeft: Bool) {
        guard let t = trace, t.sampled, let exporter = services.spans else { return }
        var end = RequestTrace.Ending(method: request.method, route: routePattern ?? "", path: request.path, status: status,
                                      requestID: request.requestID, clientAddress: request.remoteAddr)
        end.keyName = apiKey?.name
        end.clientLeft = clientLeft
        if let r = usage?.reported { end.usage = (r.prompt, r.completion, r.cached) }
        if config.otel.captureContent, t.request != nil {
            // Read here (content capture is opt-in): the queue keeps the bounded text, never the body.
            end.captureOutput = true
            end.inputMessages = (try? JSON.parse(request.body)).flatMap { RequestTrace.inputMessages(body: $0) }
        }
        exporter.submit(FinishedTrace(trace: t, ending: end, endMono: Clock.monotonicNanos()), config: config)
    }
}
