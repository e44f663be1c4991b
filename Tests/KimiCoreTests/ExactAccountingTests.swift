@testable import KimiCore
import Testing

/// What a request reserves, what the upstream's numbers may be, what a
/// budget admits and which key a retry takes: the pure parts of exact
/// accounting.
@Suite struct ExactAccountingTests {
    static let config = GatewayConfig()
    let now: Int64 = 1_795_000_000_000 // 2026-11-18 (UTC), in ms

    func chat(_ json: String) throws -> ChatRequest {
        try ChatValidation.validateShape(try JSON.parse(Array(json.utf8)), config: Self.config)
    }

    // MARK: the estimate covers the whole request

    @Test func toolsCountInThePromptEstimate() throws {
        let tools = String(repeating: #"{"type":"function","function":{"name":"f","description":"\#(String(repeating: "x", count: 900))","parameters":{}}},"#, count: 20)
        let bare = try chat(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#)
        let heavy = try chat(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"tools":[\#(tools.dropLast())]}"#)
        #expect(bare.promptTokens < 10)
        // 20 KB of tools: a token per 4 bytes of their text at least.
        #expect(heavy.promptTokens > 18_000 / 4)
    }

    @Test func imagesCountAtTheirBoundNotTheirBytesAndEveryPartCounts() throws {
        let dataURL = "data:image/png;base64," + String(repeating: "A", count: 400_000)
        let c = try chat(#"{"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"\#(dataURL)"}},{"type":"video_url","video_url":{"url":"ms://abc"}}]}]}"#)
        #expect(c.promptTokens >= PromptEstimate.imageTokens + PromptEstimate.videoTokens)
        #expect(c.promptTokens < PromptEstimate.imageTokens + PromptEstimate.videoTokens + 100)
        // Tool calls, reasoning and a tool's result are prompt too.
        let args = String(repeating: "y", count: 4000)
        let t = try chat(#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"","reasoning_content":"\#(args)","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"\#(args)"}}]},{"role":"tool","tool_call_id":"1","content":"\#(args)"}]}"#)
        #expect(t.promptTokens >= 3 * 4000 / 4)
    }

    @Test func cjkTextIsEstimatedAtOrAboveKimisRate() throws {
        // 1.5–2 CJK characters a token: 3 bytes each / 4 is above it.
        let text = String(repeating: "漢", count: 1200)
        let c = try chat(#"{"messages":[{"role":"user","content":"\#(text)"}]}"#)
        #expect(c.promptTokens >= 1200 / 2)
    }

    @Test func theLargerOfMaxTokensAndMaxCompletionTokensIsReservedAndCapsTheAnswer() throws {
        let c = try chat(#"{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":1,"max_tokens":32768}"#)
        #expect(c.maxTokens == 32768)
        #expect(c.answerByteCap == ChatRequest.answerByteCap(maxTokens: 32768, choices: 1))
        let d = try chat(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":7,"max_completion_tokens":9}"#)
        #expect(d.maxTokens == 9)
    }

    // MARK: the upstream's numbers are input

    @Test func reportedCountsAreClampedToTheRequestsBoundAndMarked() throws {
        func r(_ s: String) throws -> ReportedTokens { ReportedTokens(try JSON.parse(Array(s.utf8)), bound: 10_000) }
        let fine = try r(#"{"prompt_tokens":10,"completion_tokens":5,"cached_tokens":4}"#)
        #expect(fine == ReportedTokens(prompt: 10, completion: 5, cached: 4, clamped: false))
        let huge = try r(#"{"prompt_tokens":9223372036854775807,"completion_tokens":1000000000000000000}"#)
        #expect(huge.prompt == 10_000 && huge.completion == 10_000 && huge.clamped)
        let negative = try r(#"{"prompt_tokens":-5000000,"completion_tokens":3}"#)
        #expect(negative.prompt == 0 && negative.completion == 3 && negative.clamped)
        let float = try r(#"{"prompt_tokens":1e300,"completion_tokens":"7"}"#)
        #expect(float.prompt == 10_000 && float.completion == 0 && float.clamped)
        // OpenAI's spelling of cache hits, and never more than the prompt.
        #expect(try r(#"{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":8}}"#).cached == 8)
        #expect(try r(#"{"prompt_tokens":10,"cached_tokens":80}"#) == ReportedTokens(prompt: 10, completion: 0, cached: 10, clamped: true))
    }

    @Test func sumsOfCountsSaturateInsteadOfTrapping() {
        let big = UsageCounts(requests: 1, promptTokens: .max, completionTokens: .max, totalTokens: .max)
        #expect((big + big).totalTokens == .max)
        #expect((UsageCounts() - big).totalTokens == .min + 1)
        #expect(Int.max.addingSaturated(1) == .max && Int.min.addingSaturated(-1) == .min && 2.addingSaturated(3) == 5)
    }

    // MARK: budgets reserve before the call

    @Test func aBudgetAdmitsReservationsUpToItsLimitAndNotOneTokenMore() {
        let p = BudgetCounter.period(.day, at: now)
        var word: Int64 = 0
        var admitted = 0
        for _ in 0..<100 {
            let (new, d) = BudgetCounter.reserve(word: word, period: p, baseline: 0, tokens: 51, limit: 600)
            if d.allowed { admitted += 1; word = new! } else { #expect(new == nil && d.spent == 11 * 51) }
        }
        #expect(admitted == 11 && BudgetCounter.count(word, period: p) == 561)
        // Settled with what was used: a refund makes room again, a shortfall is debt.
        word = BudgetCounter.settle(word: word, period: p, delta: -100)!
        #expect(BudgetCounter.count(word, period: p) == 461)
        #expect(BudgetCounter.reserve(word: word, period: p, baseline: 0, tokens: 100, limit: 600).1.allowed)
        word = BudgetCounter.settle(word: word, period: p, delta: 1_000)!
        #expect(BudgetCounter.count(word, period: p) == 1_461) // carried, not forgiven
        #expect(!BudgetCounter.reserve(word: word, period: p, baseline: 0, tokens: 1, limit: 600).1.allowed)
        // Never below zero.
        #expect(BudgetCounter.count(BudgetCounter.settle(word: word, period: p, delta: -1_000_000)!, period: p) == 0)
    }

    @Test func aNewPeriodStartsEmptyAndTheLedgerIsTheFloor() {
        let today = BudgetCounter.period(.day, at: now)
        let tomorrow = BudgetCounter.period(.day, at: now + 86_400_000)
        #expect(today != tomorrow && BudgetCounter.period(.month, at: now) == BudgetCounter.period(.month, at: now + 86_400_000))
        let full = BudgetCounter.encode(period: today, count: 600)
        #expect(BudgetCounter.count(full, period: tomorrow) == 0)
        #expect(BudgetCounter.reserve(word: full, period: tomorrow, baseline: 0, tokens: 600, limit: 600).1.allowed)
        // A settlement of yesterday's reservation leaves today's word alone.
        #expect(BudgetCounter.settle(word: BudgetCounter.encode(period: tomorrow, count: 5), period: today, delta: -5) == nil)
        // The book's total (what the ledger holds) counts when the word knows less.
        let (_, d) = BudgetCounter.reserve(word: 0, period: today, baseline: 580, tokens: 51, limit: 600)
        #expect(!d.allowed && d.spent == 580)
        // Every word fits Lua's exact integers (Redis).
        #expect(BudgetCounter.encode(period: .max, count: .max) < 1 << 53)
    }

    @Test func aRefusalNamesTheBudgetWhatIsLeftAndWhenItRenews() {
        let r = BudgetCheck.refusal(kind: .day, limit: 600, spent: 561, amount: 51, now: now)
        #expect(r.message.contains("39 left") && r.message.contains("reserves 51") && r.message.contains("renews at"))
        #expect(r.retryAfter > 0 && r.retryAfter <= 86_400)
        #expect(BudgetCheck.refusal(kind: .month, limit: 600, spent: 600, amount: 1, now: now).message.hasPrefix("Monthly token budget exhausted"))
    }

    // MARK: stream deltas in any spelling

    @Test func textDeltasAreFoundInAnyJSONSpelling() {
        let compact = #"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#
        let spaced = #"{ "id" : "c", "choices" : [ { "index" : 0, "delta" : { "content" : "Hi" } } ] }"#
        let escaped = #"{"choices":[{"delta":{"\u0063ontent":"Hi"},"index":0}],"id":"c"}"#
        let reasoning = #"{"choices": [{"delta": {"reasoning_content": "think"}}]}"#
        let tool = #"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments" : "{\"a\""}}]}}]}"#
        for text in [compact, spaced, escaped, reasoning, tool] { #expect(ChunkText.carriesText(text), "\(text)") }
        let role = #"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        let done = #"{"choices":[{"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":1}}]}"#
        let emptySpaced = #"{"choices" : [{"delta" : {"content" : ""}}]}"#
        for text in [role, done, emptySpaced, "[DONE]", "not json"] { #expect(!ChunkText.carriesText(text), "\(text)") }
    }

    @Test func everyRespellingIsTheSameValueAndCarriesTheSameText() throws {
        let chunks = [#"{"id":"c","choices":[{"index":0,"delta":{"content":"Hi \"there\" \u00e9"}}]}"#,
                      #"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":1}"}}]}}]}"#,
                      #"{"choices":[{"delta":{"role":"assistant","content":""}}],"usage":null,"n":[1,2.5e3,true,false]}"#]
        for c in chunks {
            let v = try JSON.parse(Array(c.utf8))
            for style in JSONRespelling.Style.allCases {
                for seed in UInt64(1)...40 {
                    let other = JSONRespelling.respell(v.serializedBytes(), style: style, seed: seed)
                    #expect(try JSON.parse(other) == v)
                    #expect(ChunkText.carriesText(String(decoding: other, as: UTF8.self)) == ChunkText.carriesText(c))
                }
            }
        }
        #expect(String(decoding: JSONRespelling.respell(Array(#"{"a":[1,2]}"#.utf8), style: .spaced), as: UTF8.self) == #"{ "a": [ 1, 2 ] }"#)
    }

    // MARK: retries avoid a sick key

    @Test func whenEveryKeyWasTriedTheOneWithTheShortestTroubleGoesNextThenTheOneTriedLongestAgo() {
        let t = now * 1000
        // Key 0 never answers (a long streak), key 1 met a one-off overload: attempt 3 takes key 1.
        let sick = KeyTrouble(sinceMs: now, streak: 40).word, once = KeyTrouble(sinceMs: now, streak: 1).word
        for r in 0..<50 {
            #expect(KeyChoice.pick(weights: [1, 1], words: [0, 0], tried: [1, 2], trouble: [sick, once], now: t, random: UInt64(r)) == .key(index: 1, claim: nil))
            // No trouble known: the key tried longest ago.
            #expect(KeyChoice.pick(weights: [1, 1], words: [0, 0], tried: [1, 2], now: t, random: UInt64(r)) == .key(index: 0, claim: nil))
        }
        // Trouble adds up and success clears it.
        let w = KeyTrouble.after(troubled: true, word: KeyTrouble.after(troubled: true, word: 0, nowMs: now), nowMs: now + 5)
        #expect(KeyTrouble(word: w) == KeyTrouble(sinceMs: now + 5, streak: 2) && KeyTrouble.after(troubled: false, word: w, nowMs: now) == 0)
        #expect(KeyTrouble(sinceMs: 4_102_444_800_000, streak: 255).word < 1 << 53) // year 2100, Redis-exact
    }

    @Test func aKeyInTroubleWeighsLessForAFewSeconds() {
        let t = now * 1000
        let troubled = KeyTrouble(sinceMs: now - 1000, streak: 1).word
        var counts = [0, 0]
        for r in 0..<9000 {
            guard case let .key(i, _) = KeyChoice.pick(weights: [1, 1], words: [0, 0], tried: [0, 0], trouble: [troubled, 0],
                                                       now: t, random: UInt64(r) &* 0x9E37_79B9_7F4A_7C15) else { return }
            counts[i] += 1
        }
        #expect(counts[0] * 5 < counts[1])
        // Its trouble forgotten after `troubleMicros`.
        var later = [0, 0]
        for r in 0..<2000 {
            guard case let .key(i, _) = KeyChoice.pick(weights: [1, 1], words: [0, 0], tried: [0, 0], trouble: [troubled, 0],
                                                       now: t + KeyChoice.troubleMicros, random: UInt64(r) &* 0x9E37_79B9_7F4A_7C15) else { return }
            later[i] += 1
        }
        #expect(later[0] > 800 && later[1] > 800)
    }

    @Test func aPoolRestingAfterRateLimitsIsA429AndRefusedKeysA503() {
        let t = now * 1000
        let cooling = KeyHealth(condition: .cooling, reason: .rateLimited, until: t + 2_000_000).word
        let refused = KeyHealth(condition: .disabled, reason: .unauthorized, until: t + 60_000_000).word
        #expect(KeyChoice.outage(words: [cooling], now: t) == .rateLimited(until: t + 2_000_000))
        #expect(KeyChoice.outage(words: [refused, cooling], now: t) == .rateLimited(until: t + 2_000_000))
        #expect(KeyChoice.outage(words: [refused], now: t) == .unavailable(until: t + 60_000_000))
    }
}

@Suite struct FileReferenceTests {
    @Test func everyMsURLInEveryContentPartIsAReference() throws {
        let body = try JSON.parse(Array(#"""
        {"messages":[{"role":"system","content":"ms://not-a-part"},
          {"role":"user","content":[{"type":"text","text":"ms://in-text-is-not-a-url"},
            {"type":"image_url","image_url":{"url":"ms://file-a"}},
            {"type":"video_url","video_url":{"url":"  MS://file-b "}},
            {"type":"image_url","image_url":"ms://file-c"},
            {"type":"future_part","future_part":{"url":"ms://file-d"}},
            {"type":"image_url","image_url":{"url":"https://example.com/x.png"}},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}
        """#.utf8))
        #expect(FileReferences.ids(in: body) == ["file-a", "file-b", "file-c", "file-d"])
        #expect(FileReferences.ids(in: ["messages": [["role": "user", "content": "hi"]]]).isEmpty)
    }
}
