/// A key's token budget for one period (a UTC day or month) as one word of
/// shared state — the mapped table on a machine, Redis in a fleet — changed
/// only by compare-and-swap, so the check is exact across every process:
/// each request reserves its worst case (prompt estimate + max tokens per
/// choice) before anything goes upstream, and settles with what it used
/// when it ends. A book of drained ledger rows could not see requests in
/// flight: 60 concurrent requests against a 600-token day let 2,497 through.
///
/// The word: the period's number in the high bits (days or months since
/// 1970, modulo 2^12: a word would have to sit untouched for 11 years to
/// be mistaken for today's), the tokens counted in it in the low 40
/// (1.1·10^12; budgets are at most 10^12). 52 bits in all, so Redis's Lua
/// (doubles, exact below 2^53) compares and stores it exactly. A word of
/// another period — the day turned, or a slot never used (0) — counts as
/// empty, so a new period starts without anyone resetting anything, and
/// one CAS moves both at once.
///
/// What a word counts is at least the ledger's total for the period: the
/// `baseline` (the process's book of the ledger, which also holds what was
/// spent before the word existed: the table recreated, the key given a
/// budget today) is taken when it is larger. A settlement that finds
/// another period in the word does nothing (that period is over). Usage
/// beyond a reservation (the prompt estimate was low) is charged and
/// carried as debt until the period renews: never forgiven.
///
/// A money budget is the same word counting millionths of the currency
/// (`Price.micros`) in a slot of its own: 2^40 of them is 1.1 million,
/// above `Budget.maxCost`.
public enum BudgetCounter {
    public enum Kind: Int, Sendable { case day = 0, month = 1 }
    /// What a counter counts: tokens, or millionths of the currency.
    public enum Measure: Int, Sendable { case tokens = 0, costMicros = 1 }

    static let countBits = 40
    static let countMask: Int64 = (1 << countBits) - 1
    static let periodMask: Int64 = (1 << 12) - 1

    /// The period's number: days since 1970 for a day, months for a month.
    public static func period(_ kind: Kind, at ms: Int64) -> Int64 {
        let days = UsagePeriod.floorDiv(ms, UsagePeriod.dayMs)
        switch kind {
        case .day: return days & periodMask
        case .month:
            let (y, m, _) = UsagePeriod.civil(days: days)
            return ((y - 1970) * 12 + Int64(m - 1)) & periodMask
        }
    }

    public static func encode(period: Int64, count: Int) -> Int64 {
        (period & periodMask) << countBits | (Int64(min(max(0, count), Int(countMask))) & countMask)
    }

    /// The count the word holds for `period`; 0 for a word of another period.
    public static func count(_ word: Int64, period: Int64) -> Int {
        word >> countBits == (period & periodMask) ? Int(word & countMask) : 0
    }

    public struct Decision: Equatable, Sendable {
        public var allowed: Bool
        /// Tokens counted in the period before this request.
        public var spent: Int
    }

    /// Reserves `tokens` when spent + tokens ≤ limit. Returns the word to
    /// store (nil: leave it) and the decision.
    public static func reserve(word: Int64, period: Int64, baseline: Int, tokens: Int, limit: Int) -> (Int64?, Decision) {
        let spent = max(count(word, period: period), max(0, baseline))
        let tokens = max(0, tokens)
        guard spent.addingSaturated(tokens) <= limit else { return (nil, Decision(allowed: false, spent: spent)) }
        return (encode(period: period, count: spent + tokens), Decision(allowed: true, spent: spent))
    }

    /// Settles a reservation of `period`: `delta` = used − reserved
    /// (negative: a refund), never below zero.
    public static func settle(word: Int64, period: Int64, delta: Int) -> Int64? {
        guard delta != 0, word >> countBits == (period & periodMask) else { return nil }
        return encode(period: period, count: count(word, period: period).addingSaturated(delta))
    }

    /// The slot key of a key's counter (by its fingerprint) for a kind of period and a measure.
    public static func slotKey(fingerprint: String, kind: Kind, measure: Measure = .tokens) -> UInt64 {
        let policy = switch (kind, measure) {
        case (.day, .tokens): "budget-day"
        case (.month, .tokens): "budget-month"
        case (.day, .costMicros): "budget-cost-day"
        case (.month, .costMicros): "budget-cost-month"
        }
        return RateLimiter.key(client: fingerprint, policy: policy)
    }
}
