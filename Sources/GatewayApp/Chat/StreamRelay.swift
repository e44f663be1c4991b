import KimiCore
import Upstream

/// Relays an upstream SSE stream to the client, event by event, flushing
/// after each one (libfcgi buffers 8 KiB otherwise).
///
/// States and legal transitions:
///   waiting   → streaming   upstream answered 200: our SSE head goes out
///   waiting   → rejected    upstream answered an error: body kept for mapping
///   streaming → finished    `[DONE]` relayed
///   streaming → clientGone  a flush failed: curl is told to stop, which
///                           closes the upstream connection (generation stops)
///   streaming → failed      upstream broke off / timed out, or sent an
///                           event over the cap: one error event, and the
///                           log says why (never `client-left`)
///   waiting   → failed      transport failure before any answer: JSON error
final class StreamRelay: UpstreamReceiver {
    enum State: Equatable { case waiting, streaming, rejected(Int), finished, failed, clientGone }

    /// Turns one upstream event into the frames this face sends.
    typealias Transform = (SSEParser.Event, StreamRelay) -> [String]

    private(set) var state = State.waiting
    private let ctx: RequestContext
    private var parser = SSEParser()
    private let transform: Transform
    private let keepAliveNanos: UInt64
    private var lastWrite = Clock.monotonicNanos()
    private(set) var errorBody: [UInt8] = []
    private(set) var errorHeaders: [String: String] = [:]
    /// Why the relay itself gave up on the upstream (an oversized event).
    private(set) var failure: GatewayError?
    /// Usage seen in the stream (either place), for the log and the app face.
    var usage: JSON?
    var sawDone = false
    var events = 0

    init(ctx: RequestContext, keepAliveSeconds: Int, transform: @escaping Transform) {
        self.ctx = ctx
        self.transform = transform
        keepAliveNanos = UInt64(keepAliveSeconds) * 1_000_000_000
    }

    func upstreamHead(status: Int, headers: [String: String]) -> Bool {
        guard state == .waiting else { return true }
        if status == 200 {
            state = .streaming
            ctx.writer.writeHead(status: 200, headers: ctx.responseHeaders + SSEFrame.headers)
            return send([])
        }
        state = .rejected(status)
        errorHeaders = headers
        return true
    }

    func upstreamData(_ bytes: UnsafeRawBufferPointer) -> Bool {
        switch state {
        case .rejected:
            if errorBody.count < 64 << 10 { errorBody.append(contentsOf: bytes) }
            return true
        case .streaming:
            let parsed: [SSEParser.Event]
            do { parsed = try parser.feed(bytes) } catch {
                failure = .upstreamFailed("Upstream stream broken: \(error)")
                state = .failed
                return false
            }
            for e in parsed {
                events += 1
                if e.data == "[DONE]" { sawDone = true }
                let frames = transform(e, self)
                guard send(frames) else { return false }
                if sawDone { state = .finished; break }
            }
            return true
        default:
            return true
        }
    }

    /// `: keep-alive` while the upstream is silent (nginx's read timeout and
    /// proxies in between must not cut the stream); also how a client that
    /// left during the silence is noticed.
    func upstreamTick() -> Bool {
        guard state == .streaming, Clock.monotonicNanos() &- lastWrite >= keepAliveNanos else { return !ctx.writer.clientGone }
        return send([SSEFrame.keepAlive])
    }

    /// Writes the frames and flushes; a failed flush means the client left.
    private func send(_ frames: [String]) -> Bool {
        for f in frames { ctx.writer.write(f) }
        lastWrite = Clock.monotonicNanos()
        if !ctx.writer.flush() {
            state = .clientGone
            return false
        }
        return true
    }

    /// Runs the relay to its end and settles what the client sees.
    func run(_ req: UpstreamRequest) throws(GatewayError) {
        let client = UpstreamClient.forCurrentThread()
        let result = client.perform(req, receiver: self)
        ctx.noteUpstreamVersion(client)
        if let failure { throw failure } // after the head: an error event (Gateway.finish)
        switch (result, state) {
        case (_, .clientGone), (.abortedByReceiver, _):
            // Only a gone client stops the relay now (an oversized event is
            // `failure`); `Gateway.handle` writes `client-left` to the log.
            state = .clientGone
        case let (_, .rejected(status)):
            throw UpstreamErrorMapping.map(status: status, body: errorBody, retryAfter: errorHeaders["retry-after"], apiKey: ctx.config.upstream.apiKey)
        case let (.failed(f), _):
            state = .failed
            throw UpstreamErrorMapping.map(f) // after the head: an error event (Gateway.finish)
        case (.completed, .finished):
            break
        case (.completed, .waiting):
            throw GatewayError.upstreamFailed("Upstream closed without answering")
        case (.completed, _):
            state = .failed
            throw GatewayError.upstreamFailed("Upstream stream ended before [DONE]")
        }
        if let usage { ctx.logNotes.append(Usage.logWord(usage)) }
    }
}
