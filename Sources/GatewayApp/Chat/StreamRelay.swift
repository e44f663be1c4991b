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

    init(ctx: RequestContext, keepAliveSeconds: Int, transform: @escaping Transform) {
        self.ctx = ctx
        self.transform = transform
        machine = SSERelayStateMachine(keepAliveNanos: UInt64(keepAliveSeconds) * 1_000_000_000)
    }

    func upstreamHead(status: Int, headers: [String: String]) -> Bool {
        switch machine.upstreamHead(status: status, headers: headers, now: Clock.monotonicNanos()) {
        case .writeStreamHead:
            ctx.writer.writeHead(status: 200, headers: ctx.responseHeaders + SSEFrame.headers)
            return flushed()
        case .collectErrorBody:
            return true
        }
    }

    func upstreamData(_ bytes: UnsafeRawBufferPointer) -> Bool {
        switch machine.upstreamData(bytes) {
        case .keepReceiving:
            return true
        case .stopUpstream:
            return false
        case let .relay(events):
            for e in events {
                let frames = transform(e, self)
                for frame in frames { ctx.writer.write(frame) }
                if !frames.isEmpty, let capture = ctx.usage, UsageCapture.carriesText(e.data) {
                    capture.relayedDeltas += 1
                    if capture.firstTokenNanos == nil { capture.firstTokenNanos = Clock.monotonicNanos() }
                }
            }
            return flushed()
        }
    }

    func upstreamTick() -> Bool {
        switch machine.tick(now: Clock.monotonicNanos()) {
        case .sendKeepAlive:
            ctx.writer.write(SSEFrame.keepAlive)
            return flushed()
        case .nothing:
            return !ctx.writer.clientGone
        }
    }

    /// Flushes what was written; a failed flush means the client left.
    private func flushed() -> Bool {
        machine.written(ok: ctx.writer.flush(), now: Clock.monotonicNanos()) == .keepReceiving
    }

    /// Runs the relay to its end and settles what the client sees: errors
    /// before our head become the face's error response, after it one error
    /// event (`Gateway.finish`); a gone client is logged by `Gateway.handle`.
    func run(_ req: UpstreamRequest) throws(GatewayError) {
        let client = UpstreamClient.forCurrentThread()
        let outcome: SSERelayStateMachine.TransferOutcome = switch client.perform(req, receiver: self) {
        case .completed: .completed
        case .abortedByReceiver: .abortedByReceiver
        case let .failed(f): .failed(UpstreamErrorMapping.map(f))
        }
        ctx.noteUpstreamVersion(client)
        defer { if let usage { ctx.usage?.usage = usage } }
        switch machine.upstreamFinished(outcome) {
        case .finished:
            if let usage { ctx.logNotes.append(Usage.logWord(usage)) }
        case .clientLeft:
            break
        case let .rejected(status, body, retryAfter):
            throw UpstreamErrorMapping.map(status: status, body: body, retryAfter: retryAfter, apiKey: ctx.config.upstream.apiKey)
        case let .failed(e):
            throw e
        }
    }
}
