import KimiCore
import Upstream

/// Relays an upstream SSE stream to the client, event by event, flushing
/// after each one (libfcgi buffers 8 KiB otherwise). The curl and FastCGI
/// calls are here; what each one means — the states, what to write, when to
/// stop the upstream, how the stream ends — is `SSERelayStateMachine`'s
/// (KimiCore, unit-tested with SSE fixtures).
final class StreamRelay: UpstreamReceiver {
    /// Turns one upstream event into the frames this face sends.
    typealias Transform = (SSEParser.Event, StreamRelay) -> [String]

    private(set) var machine: SSERelayStateMachine
    private let ctx: RequestContext
    private let transform: Transform
    /// Usage seen in the stream (either place), for the log and the app face.
    var usage: JSON?
    /// OpenAI's usage-only last chunk, sent before `[DONE]` when the client
    /// asked for `stream_options.include_usage` and the upstream sent none.
    var finalUsageChunk: JSON?

    /// Set by a transform that knows its face's deltas (Anthropic's): whether
    /// the event it just turned into frames carried generated text. Unset,
    /// OpenAI's chunk shape decides (`ChunkText`).
    var eventCarriedText: Bool?

    private let keepAliveNanos: UInt64
    private let dialect: StreamDialect

    init(ctx: RequestContext, keepAliveSeconds: Int, dialect: StreamDialect = .openAI, transform: @escaping Transform) {
        self.ctx = ctx
        self.transform = transform
        self.dialect = dialect
        keepAliveNanos = UInt64(keepAliveSeconds) * 1_000_000_000
        machine = SSERelayStateMachine(keepAliveNanos: keepAliveNanos, dialect: dialect)
    }

    func upstreamHead(status: Int, headers: [String: String]) -> Bool {
        _ = machine.upstreamHead(status: status, headers: headers, now: Clock.monotonicNanos())
        return true // our head waits for the first event (`SSERelayStateMachine`)
    }

    /// Our SSE head, once, in front of the first thing the client gets.
    private func headFirst() {
        if !ctx.writer.headWritten { ctx.writer.writeHead(status: 200, headers: ctx.responseHeaders + SSEFrame.headers) }
    }

    func upstreamData(_ bytes: UnsafeRawBufferPointer) -> Bool {
        switch machine.upstreamData(bytes) {
        case .keepReceiving:
            return true
        case .stopUpstream:
            return false
        case let .relay(events):
            headFirst()
            var wrote = false
            for e in events {
                eventCarriedText = nil
                ctx.traceChunk(e.data)
                let frames = transform(e, self)
                for frame in frames { ctx.writer.write(frame) }
                wrote = wrote || !frames.isEmpty
                if let capture = ctx.usage, eventCarriedText ?? ChunkText.carriesText(e.data) {
                    capture.relayedDeltas += 1
                    if capture.firstTokenNanos == nil { capture.firstTokenNanos = Clock.monotonicNanos() }
                    ctx.trace?.firstChunk(now: Clock.monotonicNanos())
                }
            }
            // Nothing for the client (reasoning it did not ask for, a role
            // chunk): no flush would tell that it left, so ask the connection.
            return wrote ? flushed() : stillConnected()
        }
    }

    func upstreamTick() -> Bool {
        switch machine.tick(now: Clock.monotonicNanos()) {
        case .sendKeepAlive:
            headFirst()
            ctx.writer.write(SSEFrame.keepAlive)
            return flushed()
        case .nothing:
            return stillConnected()
        }
    }

    /// Whether the client is still there while nothing is written to it:
    /// a look at the FastCGI connection (the web server closes it when its
    /// client goes), at most every `pollNanos` after the last look or the
    /// last flush that went through (a write to a connection the web
    /// server has closed fails; over TCP the one after it). A stream whose events are
    /// all filtered out (reasoning the app face was not asked for) or a
    /// silent upstream ran to its end — 300 of 300 deltas — after the
    /// client had left.
    private func stillConnected() -> Bool {
        if ctx.writer.clientGone { return false }
        let now = Clock.monotonicNanos()
        guard now &- lastPoll >= Self.pollNanos else { return true }
        lastPoll = now
        return ctx.writer.waitWhileConnected(milliseconds: 0)
    }

    private var lastPoll: UInt64 = 0
    /// 20 ms: one poll(2) per 20 ms of unwritten events at most.
    static let pollNanos: UInt64 = 20_000_000

    /// Flushes what was written; a failed flush means the client left. One
    /// that went through counts as a look (`stillConnected`): without it,
    /// curl's progress call after every event polled the connection too, one
    /// poll(2) an event at 10,000 streams.
    private func flushed() -> Bool {
        let ok = ctx.writer.flush(), now = Clock.monotonicNanos()
        if ok { lastPoll = now }
        return machine.written(ok: ok, now: now) == .keepReceiving
    }

    /// Runs the relay to its end through the key pool, and settles what
    /// the client sees: a failure before anything reached the client is
    /// retried like a buffered call (`RequestContext.withUpstreamKey`), and
    /// if it stays a failure becomes the face's error response; after the
    /// first event it is one error event (`Gateway.finish`), never retried.
    func run(_ services: Services, _ request: (UpstreamKey) -> UpstreamRequest) throws(GatewayError) {
        try ctx.withUpstreamKey(services) { key in
            machine = SSERelayStateMachine(keepAliveNanos: keepAliveNanos, dialect: dialect)
            (usage, finalUsageChunk) = (nil, nil)
            let client = services.transport()
            var transport: UpstreamAttempts.Failure = .final
            let outcome: SSERelayStateMachine.TransferOutcome = switch client.perform(request(key), receiver: self) {
            case .completed: { transport = .dropped; return .completed }()
            case .abortedByReceiver: .abortedByReceiver
            case let .failed(f): { transport = UpstreamAttempts.classify(f); return .failed(UpstreamErrorMapping.map(f)) }()
            }
            ctx.noteUpstreamVersion(client)
            if let usage { ctx.usage?.usage = usage }
            let retryable = !machine.clientSawBytes
            switch machine.upstreamFinished(outcome) {
            case .finished:
                if let usage { ctx.logNotes.append(Usage.logWord(usage)) }
                return .done(())
            case .clientLeft:
                return .done(())
            case let .rejected(status, body, retryAfter):
                let failure = UpstreamAttempts.classify(status: status, type: UpstreamErrorMapping.errorType(body), retryAfter: retryAfter)
                return .failed(retryable ? failure : .final, UpstreamErrorMapping.map(status: status, body: body, retryAfter: retryAfter, apiKey: key.key))
            case let .failed(e):
                return .failed(retryable ? transport : .final, e)
            }
        }
    }
}
