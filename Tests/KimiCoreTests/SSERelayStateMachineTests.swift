import Testing
@testable import KimiCore

/// `SSERelayStateMachine` driven with SSE fixtures, as `StreamRelay` drives
/// it: head, bytes in arbitrary pieces, write outcomes, ticks, the end.
@Suite struct SSERelayStateMachineTests {
    /// What a relay would have written, and how the stream settled.
    struct Run {
        var machine = SSERelayStateMachine(keepAliveNanos: 15_000_000_000)
        var relayed: [String] = []
        var headWritten = false
        var clientAlive = true
        var upstreamStopped = false
        var now: UInt64 = 1_000

        mutating func head(_ status: Int = 200, headers: [String: String] = [:]) {
            _ = machine.upstreamHead(status: status, headers: headers, now: now)
        }

        mutating func feed(_ text: String) {
            guard !upstreamStopped else { return }
            switch machine.upstreamData(Array(text.utf8)) {
            case .keepReceiving: break
            case .stopUpstream: upstreamStopped = true
            case let .relay(events):
                headWritten = true
                relayed += events.map(\.data)
                if machine.written(ok: clientAlive, now: now) == .stopUpstream { upstreamStopped = true }
            }
        }

        mutating func end(_ outcome: SSERelayStateMachine.TransferOutcome? = nil) -> SSERelayStateMachine.Settlement {
            machine.upstreamFinished(outcome ?? (upstreamStopped ? .abortedByReceiver : .completed))
        }
    }

    static let chunk = #"{"choices":[{"delta":{"content":"hi"}}]}"#

    @Test func aWholeStreamIsRelayedEventByEventAndFinishes() {
        var r = Run()
        r.head()
        r.feed("data: \(Self.chunk)\n\ndata: \(Self.chunk)\n\ndata: [DONE]\n\n")
        #expect(r.headWritten && r.relayed == [Self.chunk, Self.chunk, "[DONE]"])
        #expect(r.end() == .finished && r.machine.events == 3)
    }

    @Test func linesSplitAnywhereEvenInsideCRLFMakeTheSameEvents() {
        let stream = "data: \(Self.chunk)\r\n\r\n: keep-alive\r\n\r\ndata: [DONE]\r\n\r\n"
        let bytes = Array(stream.utf8)
        for cut in 1..<bytes.count {
            var r = Run()
            r.head()
            r.feed(String(decoding: bytes[..<cut], as: UTF8.self))
            r.feed(String(decoding: bytes[cut...], as: UTF8.self))
            #expect(r.relayed == [Self.chunk, "[DONE]"], "cut at \(cut)")
            #expect(r.end() == .finished)
        }
    }

    @Test func commentsAreNotEventsAndNothingIsWrittenForThem() {
        var r = Run()
        r.head()
        r.feed(": keep-alive\n\n: another\n\n")
        #expect(r.relayed.isEmpty)
        r.feed("data: [DONE]\n\n")
        #expect(r.relayed == ["[DONE]"] && r.end() == .finished)
    }

    @Test func nothingAfterDoneIsRelayedInTheSameReadOrALaterOne() {
        var r = Run()
        r.head()
        r.feed("data: a\n\ndata: [DONE]\n\ndata: late\n\n")
        r.feed("data: later\n\n")
        #expect(r.relayed == ["a", "[DONE]"] && r.end() == .finished)
    }

    @Test func aStreamCutBeforeDoneFailsWithAnErrorEvent() {
        var r = Run()
        r.head()
        r.feed("data: a\n\ndata: b")
        #expect(r.end() == .failed(.upstreamFailed("Upstream stream ended before [DONE]")))
        guard case .failed = r.machine.state else { Issue.record("expected failed"); return }
    }

    @Test func aTransportErrorAfterTheHeadIsTheMappedError() {
        var r = Run()
        r.head()
        r.feed("data: a\n\n")
        let timeout = GatewayError.upstreamTimeout("Upstream did not answer in time")
        #expect(r.end(.failed(timeout)) == .failed(timeout))
    }

    @Test func anErrorAnswerIsCollectedBoundedAndMappedAtTheEnd() {
        var r = Run()
        r.head(429, headers: ["retry-after": "3"])
        let body = #"{"error":{"type":"rate_limit_reached_error","message":"slow down"}}"#
        r.feed(body)
        r.feed(String(repeating: "x", count: 100 << 10))
        #expect(!r.headWritten && r.relayed.isEmpty)
        guard case let .rejected(status, kept, retryAfter) = r.end() else { Issue.record("expected rejected"); return }
        #expect(status == 429 && retryAfter == "3")
        #expect(kept.count == SSERelayStateMachine.maxErrorBody && kept.starts(with: Array(body.utf8)))
    }

    @Test func anOversizedEventStopsTheUpstreamAndFails() {
        var r = Run()
        r.machine = SSERelayStateMachine(keepAliveNanos: 1, maxEventBytes: 1024)
        r.head()
        r.feed("data: " + String(repeating: "x", count: 2000))
        #expect(r.upstreamStopped)
        guard case let .failed(e) = r.end() else { Issue.record("expected failed"); return }
        #expect(e.message.contains("over 1024 bytes"))
    }

    @Test func aClientGoneBeforeTheFirstEventIsNoticedAtItsWriteAndStopsTheUpstream() {
        var r = Run()
        r.clientAlive = false
        r.head()
        #expect(!r.upstreamStopped) // nothing written yet: our head goes with the first event
        r.feed("data: a\n\n")
        #expect(r.upstreamStopped)
        r.feed("data: b\n\n")
        #expect(r.relayed == ["a"] && r.end() == .clientLeft)
    }

    @Test func aClientGoneDuringTheStreamStopsTheUpstream() {
        var r = Run()
        r.head()
        r.feed("data: a\n\n")
        r.clientAlive = false
        r.feed("data: b\n\n")
        #expect(r.upstreamStopped && r.relayed == ["a", "b"])
        #expect(r.end() == .clientLeft)
        guard case .clientGone = r.machine.state else { Issue.record("expected clientGone"); return }
    }

    @Test func anUpstreamThatClosesWithoutAHeadFails() {
        var r = Run()
        #expect(r.end(.completed) == .failed(.upstreamFailed("Upstream closed without answering")))
    }

    @Test func keepAliveIsDueOnlyAfterTheQuietIntervalWhileStreaming() {
        var m = SSERelayStateMachine(keepAliveNanos: 100)
        #expect(m.tick(now: 10_000) == .nothing) // no head yet
        _ = m.upstreamHead(status: 200, headers: [:], now: 1_000)
        #expect(m.tick(now: 1_050) == .nothing)
        #expect(m.tick(now: 1_100) == .sendKeepAlive)
        #expect(m.written(ok: true, now: 1_100) == .keepReceiving)
        #expect(m.tick(now: 1_150) == .nothing)
        #expect(m.tick(now: 1_250) == .sendKeepAlive)
        #expect(m.written(ok: false, now: 1_250) == .stopUpstream) // the client left during the silence
        #expect(m.tick(now: 9_999) == .nothing)
    }

    @Test func theClientSeesNothingUntilTheFirstEventSoAFailureBeforeItCanBeRetried() {
        var r = Run()
        r.head()
        #expect(!r.headWritten && !r.machine.clientSawBytes)
        let e = GatewayError.upstreamFailed("reset")
        #expect(r.end(.failed(e)) == .failed(e))
        #expect(!r.machine.clientSawBytes) // retryable: nothing reached the client

        var after = Run()
        after.head()
        after.feed("data: \(Self.chunk)\n\n")
        #expect(after.headWritten && after.machine.clientSawBytes)
        #expect(after.end(.failed(e)) == .failed(e)) // the client saw an event: an error event, no retry
    }
}
