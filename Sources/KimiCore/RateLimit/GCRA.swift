/// The Generic Cell Rate Algorithm (ITU-T I.371; as redis-cell), one word of
/// state per client: the theoretical arrival time (TAT) of its next request.
///
/// With a limit of L requests per window W, the emission interval is
/// T = W / L and the burst tolerance τ = W − T: a fresh client may send L
/// requests at once, then one every T. A request at `now` is admitted when
/// TAT − τ ≤ now, and moves TAT to max(TAT, now) + T. Exact: no interleaving
/// of processes and threads admits more, because every admission is one
/// compare-and-swap of TAT (see `RateLimiter`).
///
/// Over any window of length W a client gets at most L + (L − 1) requests:
/// L as a burst, and the L − 1 the steady rate refills inside the same
/// window. From a cold start, exactly L are admitted at once.
public struct GCRA: Sendable, Equatable {
    public let limit: Int
    public let windowMicros: Int64
    public let interval: Int64
    public let tolerance: Int64

    public init(_ policy: GatewayConfig.RateLimitPolicy) {
        limit = max(1, policy.maxRequests)
        windowMicros = max(1, Int64(policy.windowMs)) * 1000
        interval = max(1, windowMicros / Int64(limit))
        tolerance = windowMicros - interval
    }

    /// A limiter's answer (this one's and `TokenGCRA`'s, in requests or tokens).
    public struct Decision: Equatable, Sendable {
        public let allowed: Bool
        /// The TAT to store when allowed.
        public let newTAT: Int64
        /// Requests (tokens) still allowed right now after this one.
        public let remaining: Int
        /// Seconds until the client is back to a full quota.
        public let resetSeconds: Int
        /// Seconds until the next request would be admitted (when refused).
        public let retryAfterSeconds: Int
        /// The request can never fit: it costs more than the limit itself (tokens only).
        public var tooLarge = false

        public init(allowed: Bool, newTAT: Int64, remaining: Int, resetSeconds: Int, retryAfterSeconds: Int, tooLarge: Bool = false) {
            (self.allowed, self.newTAT, self.remaining) = (allowed, newTAT, remaining)
            (self.resetSeconds, self.retryAfterSeconds, self.tooLarge) = (resetSeconds, retryAfterSeconds, tooLarge)
        }
    }

    public func decide(tat storedTAT: Int64, now: Int64) -> Decision {
        // GCRA never stores a TAT beyond now + W; a larger word comes from a
        // corrupt or foreign file and is clamped (no overflow trap, and the
        // client waits at most one window instead of forever).
        let tat = min(max(storedTAT, now), now + windowMicros)
        let allowAt = tat - tolerance
        if allowAt > now {
            return Decision(allowed: false, newTAT: storedTAT, remaining: 0,
                            resetSeconds: Self.ceilSeconds(tat - now), retryAfterSeconds: max(1, Self.ceilSeconds(allowAt - now)))
        }
        let newTAT = tat + interval
        // floor((now + τ − TAT′) / T) + 1, clamped at 0. Swift's `/` truncates
        // toward zero, so a negative numerator is handled before dividing.
        let slack = now + tolerance - newTAT
        let remaining = slack < 0 ? 0 : Int(slack / interval + 1)
        return Decision(allowed: true, newTAT: newTAT, remaining: min(remaining, limit - 1),
                        resetSeconds: Self.ceilSeconds(newTAT - now), retryAfterSeconds: 0)
    }

    static func ceilSeconds(_ micros: Int64) -> Int { Int(max(0, (micros + 999_999) / 1_000_000)) }
}
