/// The life of one relayed SSE stream as a value type: events in (the
/// upstream's head, its bytes, the outcome of a write, a timer tick, the
/// transfer's end), actions out (what to write, whether to stop the
/// upstream, how to settle). No I/O here: `StreamRelay` does the curl and
/// FastCGI calls and asks this machine what each one means, the way
/// async-http-client's `Transaction+StateMachine` drives its channel.
///
/// States and legal transitions:
///
/// Our own head goes out with the first event (or the first keep-alive),
/// not with the upstream's: until then the client has seen nothing, and a
/// failed attempt can be retried invisibly (`clientSawBytes`).
///
///     waitingForHead ──200──▶ streaming ──[DONE] written──▶ finished
///           │                    │  └─ a write failed ─────▶ clientGone
///           │                    └─ oversized event, cut ──▶ failed
///           ├─ non-200 ─▶ rejected (error body kept, bounded)
///           └─ transport failure ──────────────────────────▶ failed
///
/// An illegal event (a write outcome with nothing written, a second head)
/// traps in debug builds and is ignored in release.
public struct SSERelayStateMachine {
    public enum State {
        case waitingForHead
        /// `finishing`: the frames being written end with `[DONE]`.
        case streaming(parser: SSEParser, lastWriteNanos: UInt64, finishing: Bool)
        case rejected(status: Int, headers: [String: String], body: [UInt8])
        case finished
        case failed(GatewayError)
        case clientGone
    }

    public private(set) var state = State.waitingForHead
    /// Events relayed (for tests and the log).
    public private(set) var events = 0
    /// Whether anything was written to the client (head, event, keep-alive):
    /// from then on a failure is the client's to see, never retried.
    public private(set) var clientSawBytes = false
    public let keepAliveNanos: UInt64
    /// Which event ends the stream: OpenAI's `[DONE]`, Anthropic's `message_stop` (or `error`).
    public let dialect: StreamDialect
    /// How much of an error answer is kept for the error mapping.
    public static let maxErrorBody = 64 << 10
    private let maxEventBytes: Int

    public init(keepAliveNanos: UInt64, maxEventBytes: Int = 4 << 20, dialect: StreamDialect = .openAI) {
        self.keepAliveNanos = keepAliveNanos
        self.dialect = dialect
        self.maxEventBytes = maxEventBytes
    }

    // MARK: the upstream's head

    public enum HeadAction: Equatable {
        /// The stream is open; nothing to write yet (our head goes with the
        /// first `.relay` or `.sendKeepAlive`).
        case openStream
        /// An error answer: its body is collected, the client sees it mapped at the end.
        case collectErrorBody
    }

    public mutating func upstreamHead(status: Int, headers: [String: String], now: UInt64) -> HeadAction {
        guard case .waitingForHead = state else {
            assertionFailure("a second upstream head in \(state)")
            return .collectErrorBody
        }
        if status == 200 {
            state = .streaming(parser: SSEParser(maxEventBytes: maxEventBytes), lastWriteNanos: now, finishing: false)
            return .openStream
        }
        state = .rejected(status: status, headers: headers, body: [])
        return .collectErrorBody
    }

    // MARK: the upstream's bytes

    public enum DataAction: Equatable {
        /// Transform and write these events (the last may be `[DONE]`), flush,
        /// then report with `written(ok:now:)`.
        case relay([SSEParser.Event])
        /// Nothing to write yet (no event complete, an error body collected,
        /// or bytes after `[DONE]`): keep receiving.
        case keepReceiving
        /// Stop the transfer: the upstream broke the stream (`failed`).
        case stopUpstream
    }

    public mutating func upstreamData(_ bytes: UnsafeRawBufferPointer) -> DataAction {
        switch state {
        case .waitingForHead:
            assertionFailure("upstream data before its head")
            return .keepReceiving
        case .rejected(let status, let headers, var body):
            if body.count < Self.maxErrorBody { body.append(contentsOf: bytes.prefix(Self.maxErrorBody - body.count)) }
            state = .rejected(status: status, headers: headers, body: body)
            return .keepReceiving
        case .streaming(var parser, let lastWrite, let finishing):
            if finishing {
                assertionFailure("upstream data while [DONE] is being written")
                return .keepReceiving
            }
            // The payload's references go first, so the parser's buffers are
            // unique and grow in place (not copied on every read).
            state = .finished
            var parsed: [SSEParser.Event]
            do {
                parsed = try parser.feed(bytes)
            } catch {
                state = .failed(.upstreamFailed("Upstream stream broken: \(error)"))
                return .stopUpstream
            }
            // Nothing after [DONE] is relayed, in this read or a later one.
            var done = false
            if let i = parsed.firstIndex(where: dialect.isEnd) {
                parsed.removeSubrange((i + 1)...)
                done = true
            }
            state = .streaming(parser: parser, lastWriteNanos: lastWrite, finishing: done)
            if parsed.isEmpty { return .keepReceiving }
            events += parsed.count
            return .relay(parsed)
        case .finished, .failed, .clientGone:
            return .keepReceiving
        }
    }

    public mutating func upstreamData(_ bytes: [UInt8]) -> DataAction {
        bytes.withUnsafeBytes { upstreamData($0) }
    }

    // MARK: our writes

    public enum WriteOutcome: Equatable {
        case keepReceiving
        /// The client left: stop the transfer, which closes the upstream
        /// connection (generation stops, nothing more is billed).
        case stopUpstream
    }

    /// After `.relay` or `.sendKeepAlive` (with our head first, the first
    /// time): whether the flush reached the client.
    public mutating func written(ok: Bool, now: UInt64) -> WriteOutcome {
        clientSawBytes = true
        guard case let .streaming(parser, _, finishing) = state else {
            assertionFailure("a write outcome in \(state)")
            return .stopUpstream
        }
        guard ok else {
            state = .clientGone
            return .stopUpstream
        }
        state = finishing ? .finished : .streaming(parser: parser, lastWriteNanos: now, finishing: false)
        return .keepReceiving
    }

    // MARK: the timer

    public enum TickAction: Equatable {
        /// `: keep-alive`, then `written(ok:now:)`: nginx's read timeout and
        /// proxies in between must not cut a quiet stream, and a client that
        /// left during the silence is noticed.
        case sendKeepAlive
        case nothing
    }

    public func tick(now: UInt64) -> TickAction {
        guard case let .streaming(_, lastWrite, _) = state, now &- lastWrite >= keepAliveNanos else { return .nothing }
        return .sendKeepAlive
    }

    // MARK: the end

    public enum TransferOutcome: Equatable {
        case completed
        /// A receiver callback asked curl to stop.
        case abortedByReceiver
        /// Transport failure (timeout, reset, TLS), already mapped.
        case failed(GatewayError)
    }

    public enum Settlement: Equatable {
        /// The stream ended with `[DONE]`.
        case finished
        /// The client left; nothing more to write.
        case clientLeft
        /// The upstream refused: map this answer to the face's error.
        case rejected(status: Int, body: [UInt8], retryAfter: String?)
        /// Before our head: an error response; after it: one error event.
        case failed(GatewayError)
    }

    public mutating func upstreamFinished(_ outcome: TransferOutcome) -> Settlement {
        switch (state, outcome) {
        case let (.failed(e), _):
            return .failed(e)
        case (.clientGone, _):
            return .clientLeft
        case let (.rejected(status, headers, body), _):
            return .rejected(status: status, body: body, retryAfter: headers["retry-after"])
        case (_, .abortedByReceiver):
            state = .clientGone
            return .clientLeft
        case let (_, .failed(e)):
            state = .failed(e)
            return .failed(e)
        case (.finished, .completed):
            return .finished
        case (.waitingForHead, .completed):
            let e = GatewayError.upstreamFailed("Upstream closed without answering")
            state = .failed(e)
            return .failed(e)
        case (.streaming, .completed):
            let e = GatewayError.upstreamFailed("Upstream stream ended before \(dialect == .openAI ? "[DONE]" : "message_stop")")
            state = .failed(e)
            return .failed(e)
        }
    }
}

/// The events that end a stream, per face.
public enum StreamDialect: Sendable, Equatable {
    /// `data: [DONE]`.
    case openAI
    /// `message_stop`, or an `error` event (the upstream closes after it),
    /// by the event's name or, when it has none, by its data's `type`.
    case anthropic

    public func isEnd(_ e: SSEParser.Event) -> Bool {
        switch self {
        case .openAI:
            return e.data == "[DONE]"
        case .anthropic:
            if let name = e.event, !name.isEmpty { return name == "message_stop" || name == "error" }
            guard e.data.containsBytes("message_stop") || e.data.containsBytes("error") || e.data.containsBytes(#"\u"#),
                  let type = (try? JSON.parse(e.data))?["type"]?.stringValue else { return false }
            return type == "message_stop" || type == "error"
        }
    }
}
