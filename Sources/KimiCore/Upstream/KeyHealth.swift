/// The health of one upstream key as one 64-bit word, shared by every
/// process of the machine in the limiter's memory-mapped table and changed
/// only by compare-and-swap, so 4 processes learn together that
/// a key is refused instead of each finding out per request.
///
///     healthy ──429 rate_limit_reached──▶ cooling(until Retry-After) ──time up──▶ healthy
///        │
///        └──401 / 403 quota or permission──▶ disabled(until +disabledKeySeconds)
///                                               │ time up: ONE request claims it (CAS)
///                                               ▼
///                                            probing(until +probe window)
///                                     success ─┘   │ refused again: disabled
///                                                  │ inconclusive (overload, 5xx) or
///                                                  └ the prober died: claimable again
///
/// Layout: bits 0-2 the condition, 3-7 the reason, 8-63 `until` in µs
/// since the epoch. 0 is healthy, the table's initial value.
public struct KeyHealth: Equatable, Sendable {
    public enum Condition: Int64, Sendable { case healthy = 0, cooling = 1, disabled = 2, probing = 3 }
    public enum Reason: Int64, Sendable, CaseIterable {
        case none = 0, rateLimited, unauthorized, noQuota, permission

        public var text: String {
            switch self {
            case .none: "none"
            case .rateLimited: "rate_limit_reached_error (cooling down)"
            case .unauthorized: "invalid_authentication_error (the upstream refused the key)"
            case .noQuota: "exceeded_current_quota_error (the account has no balance)"
            case .permission: "permission_denied_error"
            }
        }
    }

    public var condition: Condition
    public var reason: Reason
    /// µs since the epoch.
    public var until: Int64

    public init(condition: Condition = .healthy, reason: Reason = .none, until: Int64 = 0) {
        self.condition = condition
        self.reason = reason
        self.until = until
    }

    public init(word: Int64) {
        condition = Condition(rawValue: word & 0x7) ?? .healthy
        reason = Reason(rawValue: (word >> 3) & 0x1F) ?? .none
        until = word >> 8
    }

    public var word: Int64 { condition == .healthy ? 0 : (until << 8) | (reason.rawValue << 3) | condition.rawValue }

    // MARK: using a key

    public enum Use: Equatable, Sendable {
        case use
        /// Usable by this request alone: store `claim` by CAS first (the half-open probe).
        case probe(claim: Int64)
        /// Out until then (µs).
        case out(until: Int64)
    }

    /// How long a probe may take before another request may probe instead
    /// (its process died, or it hangs).
    public static let probeWindowMicros: Int64 = 30_000_000

    public static func use(_ word: Int64, now: Int64) -> Use {
        let h = KeyHealth(word: word)
        switch h.condition {
        case .healthy: return .use
        case .cooling: return h.until <= now ? .use : .out(until: h.until)
        case .disabled, .probing:
            guard h.until <= now else { return .out(until: h.until) }
            return .probe(claim: KeyHealth(condition: .probing, reason: h.reason, until: now + probeWindowMicros).word)
        }
    }

    // MARK: what an attempt teaches

    public enum Lesson: Equatable, Sendable {
        /// The key worked.
        case worked
        /// 429 `rate_limit_reached_error`: the key is over its tier for this long.
        case rateLimited(retryAfterMicros: Int64)
        /// 401 / 403: the upstream will not take this key.
        case refused(Reason)
        /// Overload, 5xx, a dropped connection: nothing about the key.
        case inconclusive
    }

    /// The word after an attempt with this key; nil: leave it.
    public static func after(_ lesson: Lesson, word: Int64, now: Int64, disabledMicros: Int64) -> Int64? {
        let h = KeyHealth(word: word)
        switch lesson {
        case .worked:
            return word == 0 ? nil : 0
        case let .rateLimited(wait):
            let until = now + max(1_000_000, wait)
            if h.condition == .disabled { return nil } // a worse state stands
            if h.condition == .cooling, h.until >= until { return nil }
            return KeyHealth(condition: .cooling, reason: .rateLimited, until: until).word
        case let .refused(reason):
            return KeyHealth(condition: .disabled, reason: reason, until: now + disabledMicros).word
        case .inconclusive:
            // A probe that met an overload learned nothing: the next request may probe.
            guard h.condition == .probing else { return nil }
            return KeyHealth(condition: .disabled, reason: h.reason, until: now).word
        }
    }
}

/// A key's recent trouble beside its health word: when it last answered
/// overloaded, 5xx or timed out (ms since the epoch, the high bits) and how
/// many such answers in a row since it last worked (the low 8 bits). Every
/// process of the machine (or the fleet) writes it by CAS; 0 is no trouble.
/// Below 2^53, so Redis's Lua keeps it exact.
public struct KeyTrouble: Equatable, Sendable {
    public var sinceMs: Int64
    public var streak: Int

    public init(sinceMs: Int64 = 0, streak: Int = 0) { (self.sinceMs, self.streak) = (sinceMs, streak) }
    public init(word: Int64) { (sinceMs, streak) = (word >> 8, Int(word & 0xFF)) }
    public var word: Int64 { streak == 0 ? 0 : sinceMs << 8 | Int64(min(streak, 255)) }

    /// The word after an attempt: trouble adds to the streak, success clears it.
    public static func after(troubled: Bool, word: Int64, nowMs: Int64) -> Int64 {
        troubled ? KeyTrouble(sinceMs: nowMs, streak: KeyTrouble(word: word).streak + 1).word : 0
    }

    /// Trouble that still weighs on the choice at `nowMicros`.
    func recent(nowMicros: Int64) -> Bool { streak > 0 && nowMicros / 1000 - sinceMs < KeyChoice.troubleMicros / 1000 }
}

/// Which key an attempt uses: a weighted random pick among the keys usable
/// now, those this request has not tried first. A key in trouble (it
/// answered overloaded, 5xx or timed out within `troubleMicros`, for any
/// process: `KeyTrouble`) weighs `troubleDivisor` times less. Once every
/// usable key was tried by this request, the one with the shortest run of
/// trouble goes next (ties: the one tried longest ago) — a uniform pick
/// sent the third attempt back to a key that never answers, and 26 of 40
/// requests succeeded where 40 could.
public enum KeyChoice {
    public enum Pick: Equatable, Sendable {
        case key(index: Int, claim: Int64?)
        /// Every key is out; the soonest is back at `until` (µs).
        case none(until: Int64)
    }

    /// How long a key's trouble weighs on the choice.
    public static let troubleMicros: Int64 = 10_000_000
    public static let troubleDivisor = 8

    /// `words[i]` is `keys[i]`'s health word; `tried[i]` the request's
    /// attempt number that last used it (0: never); `trouble[i]` its
    /// `KeyTrouble` word (missing: none).
    public static func pick(weights: [Int], words: [Int64], tried: [Int], trouble: [Int64] = [], excluded: Set<Int> = [],
                            now: Int64, random: UInt64) -> Pick
    {
        var usable: [(Int, Int64?)] = []
        var soonest = Int64.max
        for i in weights.indices where !excluded.contains(i) {
            switch KeyHealth.use(words[i], now: now) {
            case .use: usable.append((i, nil))
            case let .probe(claim): usable.append((i, claim))
            case let .out(until): soonest = min(soonest, until)
            }
        }
        guard !usable.isEmpty else { return .none(until: soonest == .max ? now + 1_000_000 : soonest) }
        func troubleOf(_ i: Int) -> KeyTrouble { KeyTrouble(word: i < trouble.count ? trouble[i] : 0) }
        let fresh = usable.filter { tried[$0.0] == 0 }
        if fresh.isEmpty, let best = usable.min(by: { a, b in
            let (ta, tb) = (troubleOf(a.0), troubleOf(b.0))
            let (sa, sb) = (ta.recent(nowMicros: now) ? ta.streak : 0, tb.recent(nowMicros: now) ? tb.streak : 0)
            return sa != sb ? sa < sb : tried[a.0] < tried[b.0]
        }) {
            return .key(index: best.0, claim: best.1)
        }
        func weight(_ i: Int) -> Int {
            let w = max(1, weights[i])
            return troubleOf(i).recent(nowMicros: now) ? w : w * troubleDivisor
        }
        let total = fresh.reduce(0) { $0 + weight($1.0) }
        var r = Int(random % UInt64(total))
        for (i, claim) in fresh {
            r -= weight(i)
            if r < 0 { return .key(index: i, claim: claim) }
        }
        return .key(index: fresh[fresh.count - 1].0, claim: fresh[fresh.count - 1].1)
    }

    /// Why every key is out, for the answer: `rateLimited` when the soonest
    /// key back is cooling after a 429 `rate_limit_reached_error` (the pool
    /// rests: 429 with its `Retry-After`, as the upstream would say), else
    /// `unavailable` (refused or unreachable keys: 503).
    public enum Outage: Equatable, Sendable { case rateLimited(until: Int64), unavailable(until: Int64) }

    public static func outage(words: [Int64], now: Int64) -> Outage {
        var cooling = Int64.max, other = Int64.max
        for w in words {
            let h = KeyHealth(word: w)
            guard case let .out(until) = KeyHealth.use(w, now: now) else { continue }
            if h.condition == .cooling, h.reason == .rateLimited { cooling = min(cooling, until) } else { other = min(other, until) }
        }
        if cooling != .max { return .rateLimited(until: cooling) }
        return .unavailable(until: other == .max ? now + 1_000_000 : other)
    }
}
