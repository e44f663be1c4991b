@testable import KimiCore
import Testing

@Suite struct TokenGCRATests {
    let minute: Int64 = 60_000_000
    let t0: Int64 = 1_800_000_000_000_000

    @Test func aFreshClientMaySpendTheWholeLimitAtOnceAndNotOneTokenMore() throws {
        let g = TokenGCRA(tokensPerMinute: 2000)
        let a = g.reserve(tokens: 1500, tat: 0, now: t0)
        #expect(a.allowed && a.remaining == 500)
        let b = g.reserve(tokens: 500, tat: a.newTAT, now: t0)
        #expect(b.allowed && b.remaining == 0)
        let c = g.reserve(tokens: 1, tat: b.newTAT, now: t0)
        #expect(!c.allowed && !c.tooLarge && c.retryAfterSeconds == 1)
    }

    @Test func theWindowRefillsAtTheLimitPerMinute() throws {
        let g = TokenGCRA(tokensPerMinute: 2000)
        let full = g.reserve(tokens: 2000, tat: 0, now: t0).newTAT
        #expect(!g.reserve(tokens: 1000, tat: full, now: t0 + minute / 2 - 1).allowed)
        let half = g.reserve(tokens: 1000, tat: full, now: t0 + minute / 2)
        #expect(half.allowed && half.remaining == 0)
        // Retry-After says when the reservation fits: 600 tokens need 18 s.
        #expect(g.reserve(tokens: 600, tat: full, now: t0).retryAfterSeconds == 18)
    }

    @Test func aReservationLargerThanTheLimitCanNeverFit() throws {
        let d = TokenGCRA(tokensPerMinute: 2000).reserve(tokens: 2001, tat: 0, now: t0)
        #expect(!d.allowed && d.tooLarge)
    }

    @Test func settlingRefundsUnusedTokensButNeverBelowAFullWindow() throws {
        let g = TokenGCRA(tokensPerMinute: 2000)
        let r = g.reserve(tokens: 1200, tat: 0, now: t0)
        let refunded = g.settle(delta: -700, tat: r.newTAT, now: t0) // used 500
        #expect(g.remaining(tat: refunded, now: t0) == 1500)
        // A refund larger than what is outstanding leaves a full window, not more.
        let over = g.settle(delta: -5000, tat: refunded, now: t0)
        #expect(over == t0 && g.remaining(tat: over, now: t0) == 2000)
    }

    @Test func settlingChargesWhatTheReservationMissedUpToOneWindow() throws {
        let g = TokenGCRA(tokensPerMinute: 2000)
        let r = g.reserve(tokens: 100, tat: 0, now: t0)
        let charged = g.settle(delta: 400, tat: r.newTAT, now: t0) // used 500
        #expect(g.remaining(tat: charged, now: t0) == 1500)
        let debt = g.settle(delta: 1_000_000_000, tat: charged, now: t0)
        #expect(debt == t0 + minute) // at most one window of debt: the client waits a minute, not forever
    }

    @Test func hugeLimitsAndCostsDoNotOverflow() throws {
        let g = TokenGCRA(tokensPerMinute: Int.max)
        #expect(g.limit == 1_000_000_000)
        #expect(g.reserve(tokens: 999_999_999, tat: 0, now: t0).allowed)
        // A corrupt word far in the future is one window of debt, not forever.
        #expect(TokenGCRA(tokensPerMinute: 2000).reserve(tokens: 2000, tat: Int64.max, now: t0).retryAfterSeconds == 60)
        _ = g.settle(delta: Int.max, tat: Int64.max, now: t0)
        _ = g.settle(delta: Int.min + 1, tat: Int64.min, now: t0)
        #expect(TokenGCRA(tokensPerMinute: 7_000_000).reserve(tokens: 7_000_000, tat: 0, now: t0).allowed)
        #expect(!TokenGCRA(tokensPerMinute: 7_000_000).reserve(tokens: 7_000_001, tat: 0, now: t0).allowed)
    }

    @Test func reservationsAreExactAcrossThreadsSharingAStore() async throws {
        let limiter = RateLimiter(store: MemoryRateLimitStore())
        let g = TokenGCRA(tokensPerMinute: 2000)
        let now = t0
        let admitted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<200).reduce(0) { n, _ in n + (limiter.reserve(key: 7, tokens: 30, policy: g, now: now)!.allowed ? 30 : 0) } }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted == 1980) // 66 reservations of 30 fit in 2000
    }

    @Test func bothPoliciesAreNamedInTheDraftHeaders() throws {
        let g = GCRA(.init(windowMs: 900_000, maxRequests: 100))
        var h = RateLimitHeaders.headers(gcra: g, decision: g.decide(tat: 0, now: 1_000_000_000), nowMicros: 1_000_000_000)
        let t = TokenGCRA(tokensPerMinute: 20000)
        RateLimitHeaders.addTokens(to: &h, policy: t, decision: t.reserve(tokens: 500, tat: 0, now: 1_000_000_000))
        let d = Dictionary(uniqueKeysWithValues: h)
        #expect(d["RateLimit-Policy"] == #""requests"; q=100; w=900, "tokens"; q=20000; w=60"#)
        #expect(d["RateLimit"] == #""requests"; r=99; t=9, "tokens"; r=19500; t=2"#)
    }
}

@Suite struct UsagePeriodTests {
    func ms(_ iso: String) -> Int64 { UsagePeriod.parseISO(iso)! }

    @Test func daysStartAtUTCMidnight() throws {
        let d = UsagePeriod.day(containing: ms("2026-11-22T23:59:59.999Z"))
        #expect(d.from == ms("2026-11-22") && d.to == ms("2026-11-23"))
        #expect(UsagePeriod.day(containing: ms("2026-11-23T00:00:00Z")).from == ms("2026-11-23"))
    }

    @Test func monthsEndOnTheirLastDayIncludingLeapFebruaries() throws {
        #expect(UsagePeriod.month(containing: ms("2026-12-31T23:59:59Z")).to == ms("2027-01-01"))
        #expect(UsagePeriod.month(containing: ms("2028-02-29T12:00:00Z")).to == ms("2028-03-01"))
        #expect(UsagePeriod.month(containing: ms("2100-02-28T12:00:00Z")).to == ms("2100-03-01")) // 2100 is not a leap year
        #expect(UsagePeriod.month(containing: ms("2026-03-01T00:00:00Z")).from == ms("2026-03-01"))
        #expect(UsagePeriod.month(containing: ms("2026-02-28T23:59:59.999Z")).from == ms("2026-02-01"))
    }

    @Test func isoTextRoundTripsAndZonesAreApplied() throws {
        #expect(UsagePeriod.parseISO("1970-01-01") == 0)
        #expect(UsagePeriod.iso(ms("2026-11-22T08:05:09Z")) == "2026-11-22T08:05:09Z")
        #expect(ms("2026-11-22T10:00:00+02:00") == ms("2026-11-22T08:00:00Z"))
        #expect(ms("2026-11-22T08:00:00.250Z") == ms("2026-11-22T08:00:00Z") + 250)
        for bad in ["", "2026-13-01", "2026-11-22T25:00", "2026/11/22", "2026-11-22T08:00:00+0200", "yesterday"] {
            #expect(UsagePeriod.parseISO(bad) == nil, "\(bad)")
        }
        #expect(UsagePeriod.dayLabel(-1) == "1969-12-31")
    }
}

@Suite struct UsageBookTests {
    let now = UsagePeriod.parseISO("2026-11-22T12:00:00Z")!

    func record(_ fp: String, _ total: Int, at: Int64) -> UsageRecord {
        UsageRecord(recordID: "r\(total)\(at)", at: at, requestID: "q", keyName: "k", keyFingerprint: fp, client: "c", route: "/v1",
                    model: "m", promptTokens: total / 2, completionTokens: total - total / 2, status: 200, stream: false,
                    outcome: .completed, estimated: false, durationMs: 1)
    }

    @Test func pendingRecordsCountUntilTheLedgerHoldsThemAndNeverTwiceAfterwards() throws {
        var book = UsageBook(now: now)
        book.reload(now: now, lastRowID: 5, day: ["a": .init(requests: 1, totalTokens: 100)], month: ["a": .init(requests: 3, totalTokens: 400)])
        let r = record("a", 50, at: now)
        book.addPending(r)
        #expect(book.spent("a", now: now).day.totalTokens == 150 && book.spent("a", now: now).month.totalTokens == 450)
        book.addStored(upTo: 6, [("a", true, UsageCounts(r))]) // the drain stored it
        #expect(book.spent("a", now: now).day.totalTokens == 200) // briefly twice: the safe direction
        book.removePending(.init(r))
        #expect(book.spent("a", now: now).day == UsageCounts(requests: 2, promptTokens: 25, completionTokens: 25, totalTokens: 150))
        #expect(book.lastRowID == 6 && book.spent("b", now: now) == UsageBook.Spent())
    }

    @Test func aNewDayStartsFromZeroButKeepsTheMonth() throws {
        var book = UsageBook(now: now)
        book.reload(now: now, lastRowID: 1, day: ["a": .init(requests: 1, totalTokens: 100)], month: ["a": .init(requests: 1, totalTokens: 100)])
        let tomorrow = now + 86_400_000
        #expect(book.isStale(now: tomorrow) && !book.isStale(now: now))
        #expect(book.spent("a", now: tomorrow).day.totalTokens == 0) // before the reload too
        book.reload(now: tomorrow, lastRowID: 1, day: [:], month: ["a": .init(requests: 1, totalTokens: 100)])
        #expect(book.spent("a", now: tomorrow) == .init(day: .init(), month: .init(requests: 1, totalTokens: 100)))
    }

    @Test func budgetsRefuseAtTheLimitAndSayWhenTheyRenew() throws {
        let budget = GatewayConfig.Budget(tokensPerDay: 1000, tokensPerMonth: 5000)
        #expect(BudgetCheck.refusal(budget: budget, spent: .init(day: .init(totalTokens: 999), month: .init(totalTokens: 999)), now: now) == nil)
        let day = BudgetCheck.refusal(budget: budget, spent: .init(day: .init(totalTokens: 1000), month: .init(totalTokens: 1000)), now: now)
        #expect(day?.message.hasPrefix("Daily token budget exhausted: 1000 of 1000") == true && day?.retryAfter == 43_200)
        let month = BudgetCheck.refusal(budget: budget, spent: .init(day: .init(totalTokens: 0), month: .init(totalTokens: 5000)), now: now)
        #expect(month?.message.contains("renews at 2026-12-01T00:00:00Z") == true)
    }
}

@Suite struct UsageConfigTests {
    @Test func tokenLimitsBudgetsAndPricesParse() throws {
        let c = try GatewayConfig.parse(fileBytes: Array("""
        {"rateLimit": {"tokensPerMinute": 20000, "completionReserveTokens": 512},
         "usage": {"database": "/tmp/u.db", "drainIntervalMs": 50},
         "upstream": {"prices": {"kimi-k2": {"input": 0.6, "cachedInput": 0.15, "output": 2.5}}},
         "auth": {"keys": [{"key": "k1", "name": "team", "rateLimit": {"tokensPerMinute": 1000},
                            "budget": {"tokensPerDay": 10, "tokensPerMonth": 200}}]}}
        """.utf8))
        #expect(c.rateLimit.tokensPerMinute == 20000 && c.rateLimit.completionReserveTokens == 512)
        #expect(c.usage.database == "/tmp/u.db" && c.usage.drainIntervalMs == 50)
        #expect(c.auth.keys[0].tokensPerMinute == 1000 && c.auth.keys[0].rateLimit == nil)
        #expect(c.auth.keys[0].budget == .init(tokensPerDay: 10, tokensPerMonth: 200))
        let p = try #require(c.upstream.prices["kimi-k2"])
        #expect(abs(p.cost(prompt: 1_000_000, cached: 500_000, completion: 1_000_000) - (0.3 + 0.075 + 2.5)) < 1e-9)
    }

    @Test func mistakesAreNamed() throws {
        for (text, key) in [
            (#"{"auth": {"keys": [{"key": "k", "budget": {}}]}}"#, "auth.keys[0].budget"),
            (#"{"auth": {"keys": [{"key": "k", "budget": {"tokensPerWeek": 1}}]}}"#, "auth.keys[0].budget.tokensPerWeek"),
            (#"{"auth": {"keys": [{"key": "k", "rateLimit": {"windowMs": 1000}}]}}"#, "auth.keys[0].rateLimit"),
            (#"{"upstream": {"prices": {"m": {"input": 1}}}}"#, "upstream.prices.m"),
            (#"{"upstream": {"prices": {"m": {"input": -1, "output": 1}}}}"#, "upstream.prices.m.input"),
            (#"{"rateLimit": {"tokensPerMinute": -5}}"#, "rateLimit.tokensPerMinute"),
            (#"{"usage": {"path": "x"}}"#, "usage.path"),
        ] {
            #expect(throws: ConfigError.self) { _ = try GatewayConfig.parse(fileBytes: Array(text.utf8)) }
            do { _ = try GatewayConfig.parse(fileBytes: Array(text.utf8)) } catch { #expect(error.key == key, "\(text)") }
        }
    }

    @Test func theLedgerDefaultsToTheStorageDatabaseAndTheEnvironmentMayMoveIt() throws {
        let c = try GatewayConfig().applying(env: ["KIMI_DATABASE": "/srv/g.db"]).validated()
        #expect(c.usage.database == "/srv/g.db")
        let moved = try GatewayConfig().applying(env: ["USAGE_DATABASE": "/srv/usage.db", "RATE_LIMIT_TOKENS_PER_MINUTE": "9000"]).validated()
        #expect(moved.usage.database == "/srv/usage.db" && moved.rateLimit.tokensPerMinute == 9000)
    }
}
