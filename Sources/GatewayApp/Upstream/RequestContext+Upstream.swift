import KimiCore
import Upstream

extension RequestContext {
    /// One attempt's end, as the executor needs it.
    enum Attempt<R> {
        case done(R)
        case failed(UpstreamAttempts.Failure, GatewayError)
    }

    /// Runs `attempt` with a key of the pool until it succeeds, a failure
    /// is final, the retries or the deadline run out, or the client leaves
    /// during a backoff (the rules are `UpstreamAttempts`',
    /// the keys' `KeyHealth`'s). `pinned`: only the first key — files
    /// belong to the account that uploaded them.
    func withUpstreamKey<R>(_ services: Services, pinned: Bool = false, retries: Int? = nil,
                            _ attempt: (UpstreamKey) -> Attempt<R>) throws(GatewayError) -> R
    {
        let up = config.upstream
        let keys = up.keys
        let candidates = pinned ? [0] : Array(keys.indices)
        var plan = UpstreamAttempts(retries: retries ?? up.retries, deadline: startNanos &+ UInt64(up.retryDeadlineMs) * 1_000_000,
                                    baseBackoffMs: up.retryBackoffMs)
        var tried = Array(repeating: 0, count: keys.count)
        var last: GatewayError?
        let began = Clock.monotonicNanos()
        defer {
            metricsNotes.upstreamNanos &+= Clock.monotonicNanos() &- began
            if plan.attempts > 1 { logNotes.append("attempts=\(plan.attempts)") }
            if keys.count > 1, let k = upstreamKey { logNotes.append("upstream-key=\(k.name)") }
            upstreamAttempts = plan.attempts
        }
        while true {
            let now = Clock.wallMicros()
            switch services.pool.pick(config: config, candidates: candidates, tried: tried, now: now) {
            case let .none(until):
                // Every key is out. Before any attempt: 503, nothing sent.
                // After one: wait for the soonest key when the plan allows.
                let waitMs = Int(max(0, until - now) / 1000) + 1
                guard let error = last else {
                    logNotes.append("no-upstream-key")
                    // Keys resting after 429 rate_limit_reached_error: the
                    // same 429 with the soonest key's Retry-After; refused
                    // or unreachable keys: 503.
                    if case let .rateLimited(back) = services.pool.outage(config: config, candidates: candidates, now: now) {
                        let seconds = max(1, Int((max(0, back - now) + 999_999) / 1_000_000))
                        throw .upstreamRateLimited("Every upstream key is resting after the upstream's rate limit; retry in \(seconds) second\(seconds == 1 ? "" : "s")",
                                                   type: "rate_limit_reached_error", retryAfter: seconds)
                    }
                    throw .noUpstreamKey(retryAfter: max(1, (waitMs + 999) / 1000))
                }
                guard plan.attempts <= plan.retries, Clock.monotonicNanos() &+ UInt64(waitMs) * 1_000_000 < plan.deadline else { throw error }
                guard writer.waitWhileConnected(milliseconds: waitMs) else {
                    logNotes.append("client-left-in-backoff")
                    throw error
                }
            case let .key(i, _):
                plan.started()
                tried[i] = plan.attempts
                let key = keys[i]
                upstreamKey = key
                trace?.beginAttempt(spanID: RequestID.random64(), keyName: key.name, now: Clock.monotonicNanos())
                let outcome = attempt(key)
                if case let .failed(failure, _) = outcome {
                    trace?.endAttempt(now: Clock.monotonicNanos(), errorType: failure.metricLabel)
                } else {
                    trace?.endAttempt(now: Clock.monotonicNanos(), errorType: nil)
                }
                switch outcome {
                case let .done(r):
                    services.pool.learn(.worked, key: key, config: config, now: Clock.wallMicros())
                    return r
                case let .failed(failure, error):
                    services.pool.learn(failure.lesson, key: key, config: config, now: Clock.wallMicros())
                    metricsNotes.upstreamErrors.append(failure.metricLabel)
                    last = error
                    guard !writer.clientGone else { throw error }
                    switch plan.next(after: failure, now: Clock.monotonicNanos(), random: services.pool.nextRandom()) {
                    case .stop:
                        throw error
                    case let .retry(afterMs):
                        metricsNotes.retries += 1
                        guard writer.waitWhileConnected(milliseconds: afterMs) else {
                            logNotes.append("client-left-in-backoff")
                            throw error
                        }
                    }
                }
            }
        }
    }

    /// `Server-Timing: gateway;dur=…, upstream;dur=…` (ms) for an answer
    /// that came whole from the upstream: the gateway's own
    /// time so far beside the upstream's, so a client sees the overhead.
    var serverTiming: (String, String) {
        let total = Clock.monotonicNanos() &- startNanos
        let upstream = min(total, metricsNotes.upstreamNanos)
        func ms(_ w: inout ASCIIText, _ n: UInt64) {
            let tenths = (n + 50_000) / 100_000
            w.number(tenths / 10); w.byte(0x2E); w.number(tenths % 10)
        }
        return ("Server-Timing", ASCIIText.build(capacity: 96) { w in
            w.text("gateway;dur="); ms(&w, total - upstream); w.text(", upstream;dur="); ms(&w, upstream)
        })
    }

    /// A buffered upstream call through the pool (every route's non-stream call).
    func upstreamCall(_ services: Services, _ method: String, _ path: String, body: [UInt8] = [],
                      maxBytes: Int = BufferedCall.defaultMaxBytes, pinned: Bool = false, retries: Int? = nil,
                      prepare: (inout UpstreamRequest) -> Void = { _ in }) throws(GatewayError) -> BufferedCall
    {
        try withUpstreamKey(services, pinned: pinned, retries: retries) { key in
            var req = upstreamRequest(method, path, body: body, key: key)
            prepare(&req)
            return BufferedCall.attempt(req, key: key, budget: services.buffers, maxBytes: maxBytes, ctx: self, transport: services.transport())
        }
    }
}
