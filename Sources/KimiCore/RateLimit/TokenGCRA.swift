/// A cost-weighted GCRA for tokens per minute: the same one word
/// of state per client as `GCRA` — its theoretical arrival time (TAT), here
/// in microseconds since the epoch, so both kinds of word share one table
/// and its eviction — where a request of `c` tokens moves the TAT by
/// `c × W / L` instead of W / L (redis-cell's `quantity`).
///
/// With L tokens per window W the burst tolerance is the whole window: a
/// fresh client may spend L tokens at once, then the window refills at
/// L / W. A reservation of `c` tokens at `now` fits when
/// max(TAT, now) + ⌈c·W / L⌉ − W ≤ now. (⌈c·W / L⌉ rather than c × a
/// rounded interval: 7M tokens/min is 8.57 µs a token, and rounding that
/// would change the limit by 7 %.) After the call, `settle`
/// moves the TAT by the difference between what was used and what was
/// reserved: a refund never takes it below `now` (a client cannot bank
/// unused tokens beyond a full window), a charge never above `now + W`
/// (a debt larger than one window is forgiven, so nobody waits forever and
/// no arithmetic overflows).
///
/// Exact across processes: every change is one compare-and-swap of the TAT
/// (`RateLimiter.update`). Over any window the tokens admitted are at most
/// L + what the window refills + the excess of the actual usage over the
/// reservations settled in it.
public struct TokenGCRA: Sendable, Equatable {
    public let limit: Int
    public let windowMicros: Int64

    /// `tokensPerMinute` ≤ 10^9 (the config's bound): every product below
    /// stays under 10^9 × 6·10^7 < 2^63.
    public init(tokensPerMinute: Int, windowSeconds: Int = 60) {
        windowMicros = Int64(max(1, windowSeconds)) * 1_000_000
        limit = min(max(1, tokensPerMinute), 1_000_000_000)
    }

    public typealias Decision = GCRA.Decision

    /// A TAT within [now, now + W]: older words mean a full window, larger
    /// ones come from a corrupt or foreign file (or an old config).
    @inline(__always) func clamp(_ tat: Int64, now: Int64) -> Int64 { min(max(tat, now), now &+ windowMicros) }

    /// ⌈tokens × W / L⌉ µs, for 0 ≤ tokens ≤ L (more saturates at one window).
    @inline(__always) public func span(_ tokens: Int) -> Int64 {
        let c = Int64(min(max(0, tokens), limit))
        return (c * windowMicros + Int64(limit) - 1) / Int64(limit)
    }

    public func reserve(tokens: Int, tat storedTAT: Int64, now: Int64) -> Decision {
        let tat = clamp(storedTAT, now: now)
        let cost = max(0, tokens)
        if cost > limit {
            return Decision(allowed: false, newTAT: storedTAT, remaining: remaining(tat: tat, now: now),
                            resetSeconds: Self.seconds(tat - now), retryAfterSeconds: 0, tooLarge: true)
        }
        let newTAT = tat + span(cost)
        let allowAt = newTAT - windowMicros
        if allowAt > now {
            return Decision(allowed: false, newTAT: storedTAT, remaining: remaining(tat: tat, now: now),
                            resetSeconds: Self.seconds(tat - now),
                            retryAfterSeconds: max(1, Self.seconds(allowAt - now)), tooLarge: false)
        }
        return Decision(allowed: true, newTAT: newTAT, remaining: remaining(tat: newTAT, now: now),
                        resetSeconds: Self.seconds(newTAT - now), retryAfterSeconds: 0, tooLarge: false)
    }

    /// The TAT after settling a reservation: `delta` = used − reserved
    /// tokens (negative: a refund).
    public func settle(delta: Int, tat storedTAT: Int64, now: Int64) -> Int64 {
        let tat = clamp(storedTAT, now: now)
        if delta >= 0 { return min(tat + span(delta), now + windowMicros) }
        return max(tat - span(-delta), now)
    }

    static func seconds(_ micros: Int64) -> Int { GCRA.ceilSeconds(micros) }

    /// Tokens available now with this TAT: ⌊(now + W − TAT) × L / W⌋, in [0, L].
    public func remaining(tat: Int64, now: Int64) -> Int {
        let free = now + windowMicros - clamp(tat, now: now)
        return free <= 0 ? 0 : min(limit, Int(free * Int64(limit) / windowMicros))
    }
}
