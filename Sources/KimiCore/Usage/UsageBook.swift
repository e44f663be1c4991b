/// Requests, tokens and money (millionths of the currency of
/// `upstream.prices`; 0 for rows of no price) in a period.
public struct UsageCounts: Equatable, Sendable {
    public var requests = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var totalTokens = 0
    public var costMicros = 0

    public init(requests: Int = 0, promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int = 0, costMicros: Int = 0) {
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.costMicros = costMicros
    }

    public init(_ r: UsageRecord) {
        self.init(requests: 1, promptTokens: r.promptTokens, completionTokens: r.completionTokens, totalTokens: r.totalTokens,
                  costMicros: r.costMicros ?? 0)
    }

    /// Saturating: counts come from outside (`ReportedTokens` bounds each
    /// row, but a sum of many must not trap either).
    public static func + (a: UsageCounts, b: UsageCounts) -> UsageCounts {
        UsageCounts(requests: a.requests.addingSaturated(b.requests), promptTokens: a.promptTokens.addingSaturated(b.promptTokens),
                    completionTokens: a.completionTokens.addingSaturated(b.completionTokens),
                    totalTokens: a.totalTokens.addingSaturated(b.totalTokens), costMicros: a.costMicros.addingSaturated(b.costMicros))
    }

    var clampedAtZero: UsageCounts {
        UsageCounts(requests: max(0, requests), promptTokens: max(0, promptTokens), completionTokens: max(0, completionTokens),
                    totalTokens: max(0, totalTokens), costMicros: max(0, costMicros))
    }

    public static func - (a: UsageCounts, b: UsageCounts) -> UsageCounts {
        a + UsageCounts(requests: 0 &- b.requests, promptTokens: 0 &- b.promptTokens, completionTokens: 0 &- b.completionTokens,
                        totalTokens: 0 &- b.totalTokens, costMicros: 0 &- b.costMicros)
    }
}

/// Each process's view of every key's usage today and this month, for
/// budgets and `GET /api/usage` without SQLite on the request
/// path: what the ledger holds (loaded once per period, then followed row
/// by row as any process adds to it) plus, for keys with a budget, what this
/// process has journalled but not yet stored (for the others the book
/// trails by one drain, like every process's view of every other). A record moves from pending to stored when its
/// drain commits; for the moment between the ledger scan and the removal
/// it counts twice (the safe direction for a budget). What other processes
/// have not yet drained is not seen: at most one drain interval (100 ms).
///
/// Periods are UTC calendar days and months (`UsagePeriod`); a record
/// counts in the period holding its start.
public struct UsageBook: Sendable {
    public struct Spent: Equatable, Sendable {
        public var day = UsageCounts()
        public var month = UsageCounts()
        public init(day: UsageCounts = UsageCounts(), month: UsageCounts = UsageCounts()) { self.day = day; self.month = month }
    }

    public private(set) var day: UsagePeriod
    public private(set) var month: UsagePeriod
    /// The last ledger row seen (SQLite rowid).
    public private(set) var lastRowID: Int64 = 0
    var stored: [String: Spent] = [:]
    var pending: [String: Spent] = [:]

    public init(now ms: Int64) {
        day = .day(containing: ms)
        month = .month(containing: ms)
    }

    /// True when `now` is past the periods loaded: `reload` is due.
    public func isStale(now ms: Int64) -> Bool { ms >= day.to || ms < day.from }

    /// Starts the periods holding `now` from the ledger's totals up to row `lastRowID`.
    public mutating func reload(now ms: Int64, lastRowID: Int64, day dayTotals: [String: UsageCounts], month monthTotals: [String: UsageCounts]) {
        let (newDay, newMonth) = (UsagePeriod.day(containing: ms), UsagePeriod.month(containing: ms))
        // Pending counts of a past period no longer count anywhere (and
        // `removePending` leaves a period it is not in alone).
        if newMonth != month { pending = [:] } else if newDay != day {
            for k in pending.keys { pending[k]!.day = UsageCounts() }
        }
        (day, month) = (newDay, newMonth)
        self.lastRowID = lastRowID
        stored = [:]
        for (k, v) in monthTotals { stored[k, default: Spent()].month = v }
        for (k, v) in dayTotals { stored[k, default: Spent()].day = v }
    }

    /// What ledger rows `(lastRowID, upTo]` added (any process's), summed
    /// per key: `inDay` sums count in today and this month, the others in
    /// this month only.
    public mutating func addStored(upTo rowID: Int64, _ sums: [(fingerprint: String, inDay: Bool, counts: UsageCounts)]) {
        lastRowID = max(lastRowID, rowID)
        for s in sums {
            stored[s.fingerprint, default: Spent()].month = stored[s.fingerprint, default: Spent()].month + s.counts
            if s.inDay { stored[s.fingerprint, default: Spent()].day = stored[s.fingerprint, default: Spent()].day + s.counts }
        }
    }

    /// A record this process journalled.
    public mutating func addPending(_ r: UsageRecord) { add(&pending, r.keyFingerprint, r.at, UsageCounts(r)) }

    /// A row of a key that the ledger now holds: whose, when, how much.
    public struct Stored: Equatable, Sendable {
        public let fingerprint: String
        public let at: Int64
        public let counts: UsageCounts

        public init(_ r: UsageRecord) { (fingerprint, at, counts) = (r.keyFingerprint, r.at, UsageCounts(r)) }

        /// nil for a row of no key (nothing is pending for those).
        public init?(_ f: JournalFields) {
            guard !f[JournalFields.keyFingerprint].isEmpty else { return nil }
            let prompt = f.int(JournalFields.promptTokens) ?? 0, completion = f.int(JournalFields.completionTokens) ?? 0
            (fingerprint, at) = (f.text(JournalFields.keyFingerprint), f.number(JournalFields.at) ?? 0)
            counts = UsageCounts(requests: 1, promptTokens: prompt, completionTokens: completion, totalTokens: prompt.addingSaturated(completion),
                                 costMicros: max(0, f.int(JournalFields.costMicros) ?? 0))
        }
    }

    /// A record of this process that the ledger now holds. Records that
    /// were never pending (keys without a budget are not counted twice
    /// over) change nothing; counts never go below zero.
    public mutating func removePending(_ r: Stored) {
        guard pending[r.fingerprint] != nil else { return }
        add(&pending, r.fingerprint, r.at, UsageCounts() - r.counts)
        pending[r.fingerprint]!.day = pending[r.fingerprint]!.day.clampedAtZero
        pending[r.fingerprint]!.month = pending[r.fingerprint]!.month.clampedAtZero
    }

    /// What the key with this fingerprint used today and this month, at `now`.
    public func spent(_ fingerprint: String, now ms: Int64) -> Spent {
        let s = stored[fingerprint] ?? Spent()
        let p = pending[fingerprint] ?? Spent()
        return Spent(day: day.contains(ms) ? s.day + p.day : UsageCounts(),
                     month: month.contains(ms) ? s.month + p.month : UsageCounts())
    }

    private func add(_ table: inout [String: Spent], _ fp: String, _ at: Int64, _ c: UsageCounts) {
        guard month.contains(at) else { return }
        table[fp, default: Spent()].month = table[fp, default: Spent()].month + c
        if day.contains(at) { table[fp, default: Spent()].day = table[fp, default: Spent()].day + c }
    }
}

extension UsagePeriod {
    public func contains(_ ms: Int64) -> Bool { ms >= from && ms < to }
}

/// A key's budget against what it spent: the refusal, if any.
public enum BudgetCheck {
    /// Nil when the key may go on; otherwise the message and the seconds
    /// until the exhausted period ends.
    public static func refusal(budget: GatewayConfig.Budget, spent: UsageBook.Spent, now ms: Int64) -> (message: String, retryAfter: Int)? {
        if let limit = budget.tokensPerMonth, spent.month.totalTokens >= limit {
            let end = UsagePeriod.month(containing: ms).to
            return ("Monthly token budget exhausted: \(spent.month.totalTokens) of \(limit) tokens used this month (UTC); it renews at \(UsagePeriod.iso(end))",
                    Int((end - ms + 999) / 1000))
        }
        if let limit = budget.tokensPerDay, spent.day.totalTokens >= limit {
            let end = UsagePeriod.day(containing: ms).to
            return ("Daily token budget exhausted: \(spent.day.totalTokens) of \(limit) tokens used today (UTC); it renews at \(UsagePeriod.iso(end))",
                    Int((end - ms + 999) / 1000))
        }
        for (kind, limit, used) in [(BudgetCounter.Kind.month, budget.costPerMonth, spent.month.costMicros), (.day, budget.costPerDay, spent.day.costMicros)] {
            guard let limit, used >= micros(limit) else { continue }
            return refusal(kind: kind, measure: .costMicros, limit: micros(limit), spent: used, amount: 0, now: ms)
        }
        return nil
    }

    /// A money budget in millionths, as its counter counts it.
    public static func micros(_ cost: Double) -> Int { Int((cost * 1_000_000).rounded(.down)) }

    /// Millionths as money: 6 decimals, trailing zeros dropped (but two kept: "0.25", "1.00", "0.000125").
    public static func money(_ micros: Int) -> String {
        let sign = micros < 0 ? "-" : ""
        let m = micros.magnitude
        var frac = String(m % 1_000_000)
        frac = String(repeating: "0", count: 6 - frac.count) + frac
        while frac.count > 2, frac.hasSuffix("0") { frac.removeLast() }
        return "\(sign)\(m / 1_000_000).\(frac)"
    }

    /// The refusal of a request whose reservation does not fit what is
    /// left of a budget (`BudgetCounter`) of either measure — tokens, or
    /// money (counted in millionths, said as money): the message names the
    /// budget, what is spent and left, what the request reserves and when
    /// the period renews; the seconds until then.
    public static func refusal(kind: BudgetCounter.Kind, measure: BudgetCounter.Measure = .tokens, limit: Int, spent: Int, amount: Int,
                               now ms: Int64) -> (message: String, retryAfter: Int)
    {
        let (name, noun, period) = kind == .day ? ("Daily", "today", UsagePeriod.day(containing: ms))
                                                : ("Monthly", "this month", UsagePeriod.month(containing: ms))
        let retry = Int((period.to - ms + 999) / 1000)
        let money = measure == .costMicros
        let (what, verb, say) = money ? ("cost", "spent", { (n: Int) in Self.money(n) }) : ("token", "used", { (n: Int) in "\(n)" })
        let unit = money ? "" : " tokens"
        if spent >= limit {
            return ("\(name) \(what) budget exhausted: \(say(spent)) of \(say(limit))\(unit) \(verb) \(noun) (UTC); it renews at \(UsagePeriod.iso(period.to))", retry)
        }
        let reserves = money ? "can cost up to \(say(amount)) (prompt estimate at the input price + max_tokens per choice at the output price)"
                             : "reserves \(amount) (prompt estimate + max_tokens per choice)"
        return ("\(name) \(what) budget: \(say(spent)) of \(say(limit))\(unit) \(verb) \(noun) (UTC), \(say(limit - spent)) left; this request \(reserves): lower max_tokens, or wait until it renews at \(UsagePeriod.iso(period.to))", retry)
    }
}
