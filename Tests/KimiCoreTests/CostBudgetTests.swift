@testable import KimiCore
import Testing

/// Money budgets (issue #31): prices in millionths, what a request reserves
/// and is charged, the config's rules and the refusals' words.
@Suite struct CostBudgetTests {
    let now: Int64 = 1_795_000_000_000 // 2026-11-18 (UTC), in ms
    // Kimi's list prices per million tokens (K2: 4 in, 1 cached, 16 out, in CNY).
    let price = GatewayConfig.Price(input: 4, cachedInput: 1, output: 16)

    @Test func aRequestCostsItsTokensAtThePricesWithCacheHitsAtTheCachedPrice() {
        // 1,000 prompt tokens (400 cached) and 500 completion: 600·4 + 400·1 + 500·16 = 10,800 millionths.
        #expect(price.micros(prompt: 1_000, cached: 400, completion: 500) == 10_800)
        #expect(price.micros(prompt: 1_000, cached: 0, completion: 500) == 12_000)
        // A fraction of a millionth is charged as a whole one, never less than the cost.
        #expect(GatewayConfig.Price(input: 0.6, output: 2.5).micros(prompt: 1, cached: 0, completion: 0) == 1)
        // A cached count above the prompt (a misreporting upstream) is held to the prompt.
        #expect(price.micros(prompt: 100, cached: 10_000, completion: 0) == 100)
    }

    @Test func theReservationIsTheCostWithoutACacheHitEvenWhenTheCachedPriceIsHigher() {
        #expect(price.worstMicros(prompt: 1_000, completion: 500) == 12_000)
        let odd = GatewayConfig.Price(input: 1, cachedInput: 3, output: 1)
        #expect(odd.worstMicros(prompt: 1_000, completion: 0) == 3_000)
    }

    @Test func aModelWithoutItsOwnPriceTakesTheStarEntry() {
        var u = GatewayConfig.Upstream()
        u.prices = ["kimi-k2": price]
        #expect(u.price(for: "kimi-k2") == price && u.price(for: "moonshot-v1-8k") == nil)
        u.prices["*"] = GatewayConfig.Price(input: 1, output: 1)
        #expect(u.price(for: "moonshot-v1-8k")?.input == 1)
    }

    @Test func aMoneyBudgetCountsInItsOwnCounterAndRefusesWhatItCannotCover() {
        let limit = BudgetCheck.micros(0.05) // 50,000 millionths
        #expect(limit == 50_000)
        let p = BudgetCounter.period(.day, at: now)
        // Four requests of at most 12,000 fit; the fifth does not.
        var word: Int64 = 0
        var admitted = 0
        for _ in 0..<5 {
            let (new, d) = BudgetCounter.reserve(word: word, period: p, baseline: 0, tokens: price.worstMicros(prompt: 1_000, completion: 500), limit: limit)
            if let new { word = new }
            if d.allowed { admitted += 1 }
        }
        #expect(admitted == 4)
        // Settled with their costs (400 tokens of each prompt were cache hits): 1,200 back each.
        for _ in 0..<4 { word = BudgetCounter.settle(word: word, period: p, delta: 10_800 - 12_000)! }
        #expect(BudgetCounter.count(word, period: p) == 43_200)
        // Token and money counters of one key are different slots.
        #expect(BudgetCounter.slotKey(fingerprint: "f", kind: .day) != BudgetCounter.slotKey(fingerprint: "f", kind: .day, measure: .costMicros))
        #expect(BudgetCounter.slotKey(fingerprint: "f", kind: .month, measure: .costMicros) != BudgetCounter.slotKey(fingerprint: "f", kind: .day, measure: .costMicros))
    }

    @Test func theRefusalSaysTheMoneySpentLeftAndWhenItRenews() {
        let (m, retry) = BudgetCheck.refusal(kind: .day, measure: .costMicros, limit: 50_000, spent: 43_200, amount: 12_000, now: now)
        #expect(m.contains("Daily cost budget: 0.0432 of 0.05 spent today (UTC), 0.0068 left; this request can cost up to 0.012"))
        #expect(m.contains("renews at 2026-11-19T00:00:00Z") && retry > 0 && retry <= 86_400)
        let (gone, _) = BudgetCheck.refusal(kind: .month, measure: .costMicros, limit: 50_000, spent: 50_000, amount: 1, now: now)
        #expect(gone.hasPrefix("Monthly cost budget exhausted: 0.05 of 0.05 spent this month"))
        #expect(BudgetCheck.money(1_000_000) == "1.00" && BudgetCheck.money(125) == "0.000125" && BudgetCheck.money(2_500_000) == "2.50")
    }

    @Test func aKeyTakesMoneyBudgetsBesideTokenOnesAndBadOnesAreNamed() throws {
        let k = try GatewayConfig.APIKey.parse(try JSON.parse(Array(#"{"key":"s","budget":{"costPerDay":2.5,"tokensPerMonth":1000}}"#.utf8)), key: "auth.keys[0]")
        #expect(k.budget == GatewayConfig.Budget(tokensPerMonth: 1000, costPerDay: 2.5))
        for (bad, says) in [(#"{"costPerDay":0}"#, "auth.keys[0].budget.costPerDay"), (#"{"costPerMonth":"10"}"#, "auth.keys[0].budget.costPerMonth"),
                            (#"{"costPerDay":2000000}"#, "at most 1000000"), (#"{}"#, "costPerDay or costPerMonth")] {
            let item = try JSON.parse(Array(#"{"key":"s","budget":\#(bad)}"#.utf8))
            let error = #expect(throws: ConfigError.self) { _ = try GatewayConfig.APIKey.parse(item, key: "auth.keys[0]") }
            #expect(error.map { "\($0.key): \($0.problem)" }?.contains(says) == true)
        }
        // Without prices a money budget cannot be counted: the config says so.
        var c = GatewayConfig()
        c.usage.enabled = true
        c.auth.keys = [k]
        #expect(throws: ConfigError.self) { _ = try c.validated() }
        c.upstream.prices = ["*": price]
        #expect(c.costBudgetProblem == nil)
    }

    @Test func theBookCountsMoneyBesideTokensAndAJournalLineCarriesIt() {
        var r = UsageRecord(recordID: "r1", at: now, requestID: "q", keyName: "app", keyFingerprint: "fp", client: "c", route: "/v1/chat/completions",
                            model: "kimi-k2", promptTokens: 1_000, completionTokens: 500, cachedTokens: 400, status: 200, stream: false,
                            outcome: .completed, estimated: false, durationMs: 3, costMicros: 10_800)
        #expect(UsageRecord(journalLine: Array(r.journalLine.dropLast())) == r)
        var book = UsageBook(now: now)
        book.addPending(r)
        r.recordID = "r2"
        r.costMicros = nil // an unpriced model's row costs nothing in the book
        book.addPending(r)
        #expect(book.spent("fp", now: now).day.costMicros == 10_800 && book.spent("fp", now: now).month.totalTokens == 3_000)
    }
}
