import Testing
@testable import KimiCore

/// Issue #13's pure parts: the key-health word, the pick, the retry plan,
/// the failure classes and the pool's config.
@Suite struct UpstreamResilienceTests {
    static let second: Int64 = 1_000_000
    static let t0: Int64 = 1_800_000_000 * second

    @Test func aHealthWordRoundTripsAndZeroIsHealthy() {
        #expect(KeyHealth(word: 0) == KeyHealth())
        for c in [KeyHealth.Condition.cooling, .disabled, .probing] {
            for r in KeyHealth.Reason.allCases {
                let h = KeyHealth(condition: c, reason: r, until: Self.t0 + 123)
                #expect(KeyHealth(word: h.word) == h)
                #expect(h.word > 0)
            }
        }
    }

    @Test func aRateLimitedKeyCoolsDownForItsRetryAfterThenServesAgain() {
        let w = KeyHealth.after(.rateLimited(retryAfterMicros: 2 * Self.second), word: 0, now: Self.t0, disabledMicros: 600 * Self.second)!
        #expect(KeyHealth.use(w, now: Self.t0 + Self.second) == .out(until: Self.t0 + 2 * Self.second))
        #expect(KeyHealth.use(w, now: Self.t0 + 2 * Self.second) == .use)
        // A shorter cool-down does not cut a longer one short.
        #expect(KeyHealth.after(.rateLimited(retryAfterMicros: Self.second), word: w, now: Self.t0, disabledMicros: 0) == nil)
    }

    @Test func aRefusedKeyIsOutThenExactlyOneRequestProbesIt() {
        let disabled = KeyHealth.after(.refused(.unauthorized), word: 0, now: Self.t0, disabledMicros: 600 * Self.second)!
        #expect(KeyHealth.use(disabled, now: Self.t0 + 599 * Self.second) == .out(until: Self.t0 + 600 * Self.second))
        guard case let .probe(claim) = KeyHealth.use(disabled, now: Self.t0 + 600 * Self.second) else {
            Issue.record("no probe when the time is up")
            return
        }
        // While the probe runs, everyone else sees the key out.
        #expect(KeyHealth.use(claim, now: Self.t0 + 601 * Self.second) == .out(until: KeyHealth(word: claim).until))
        #expect(KeyHealth.after(.worked, word: claim, now: Self.t0 + 601 * Self.second, disabledMicros: 0) == 0)
        let again = KeyHealth.after(.refused(.unauthorized), word: claim, now: Self.t0 + 601 * Self.second, disabledMicros: 600 * Self.second)!
        #expect(KeyHealth(word: again).condition == .disabled && KeyHealth(word: again).until == Self.t0 + 1201 * Self.second)
        // An overload during the probe says nothing about the key: the next request may probe.
        let inconclusive = KeyHealth.after(.inconclusive, word: claim, now: Self.t0 + 601 * Self.second, disabledMicros: 0)!
        #expect(KeyHealth.use(inconclusive, now: Self.t0 + 601 * Self.second) != .use)
        if case .probe = KeyHealth.use(inconclusive, now: Self.t0 + 601 * Self.second) {} else { Issue.record("not probe-able again") }
        // A rate limit does not overwrite a refusal.
        #expect(KeyHealth.after(.rateLimited(retryAfterMicros: Self.second), word: disabled, now: Self.t0, disabledMicros: 0) == nil)
        // Success on a healthy key changes nothing (no write per request).
        #expect(KeyHealth.after(.worked, word: 0, now: Self.t0, disabledMicros: 0) == nil)
    }

    @Test func thePickFollowsTheWeightsAmongUsableKeysAndPrefersUntriedOnes() {
        let out = KeyHealth(condition: .disabled, reason: .unauthorized, until: Self.t0 + 10 * Self.second).word
        var counts = [0, 0, 0]
        for r in 0..<4000 {
            guard case let .key(i, nil) = KeyChoice.pick(weights: [1, 3, 5], words: [0, 0, out], tried: [0, 0, 0], now: Self.t0,
                                                         random: UInt64(r) &* 0x9E37_79B9_7F4A_7C15) else { Issue.record("no key"); return }
            counts[i] += 1
        }
        #expect(counts[2] == 0)
        #expect(counts[1] > 2 * counts[0] && counts[1] < 4 * counts[0])
        // Tried keys come last; when all usable ones were tried, one of them again.
        #expect(KeyChoice.pick(weights: [1, 1], words: [0, 0], tried: [1, 0], now: Self.t0, random: 0) == .key(index: 1, claim: nil))
        #expect(KeyChoice.pick(weights: [1, 1], words: [0, out], tried: [1, 0], now: Self.t0, random: 7) == .key(index: 0, claim: nil))
        // None usable: the soonest return.
        let later = KeyHealth(condition: .cooling, reason: .rateLimited, until: Self.t0 + 3 * Self.second).word
        #expect(KeyChoice.pick(weights: [1, 1], words: [out, later], tried: [0, 0], now: Self.t0, random: 0) == .none(until: Self.t0 + 3 * Self.second))
        #expect(KeyChoice.pick(weights: [1, 1], words: [0, 0], tried: [0, 0], excluded: [0, 1], now: Self.t0, random: 0) == .none(until: Self.t0 + Self.second))
    }

    @Test func failuresAreClassifiedAsKimiMeansThem() {
        #expect(UpstreamAttempts.classify(status: 429, type: "engine_overloaded_error", retryAfter: "3") == .overloaded(retryAfterMicros: 3 * Self.second))
        #expect(UpstreamAttempts.classify(status: 429, type: "rate_limit_reached_error", retryAfter: nil) == .keyRateLimited(retryAfterMicros: nil))
        #expect(UpstreamAttempts.classify(status: 401, type: "invalid_authentication_error", retryAfter: nil) == .keyRefused(.unauthorized))
        #expect(UpstreamAttempts.classify(status: 403, type: "exceeded_current_quota_error", retryAfter: nil) == .keyRefused(.noQuota))
        #expect(UpstreamAttempts.classify(status: 403, type: "permission_denied_error", retryAfter: nil) == .keyRefused(.permission))
        #expect(UpstreamAttempts.classify(status: 502, type: "", retryAfter: nil) == .server(status: 502))
        for status in [400, 404, 413, 422] { #expect(UpstreamAttempts.classify(status: status, type: "invalid_request_error", retryAfter: nil) == .final) }
        #expect(UpstreamAttempts.classify(.connect("refused")) == .connect)
        #expect(UpstreamAttempts.classify(.firstByteTimeout("slow")) == .firstByteTimeout)
        #expect(UpstreamAttempts.classify(.timeout("idle")) == .final) // mid-answer: paying twice is worse
        #expect(UpstreamAttempts.classify(.other("reset")) == .dropped)
    }

    @Test func retriesBackOffExponentiallyWithJitterWithinTheirCountAndDeadline() {
        let ms: UInt64 = 1_000_000
        var plan = UpstreamAttempts(retries: 2, deadline: 10_000 * ms, baseBackoffMs: 200)
        plan.started()
        for r: UInt64 in [0, 99, 12345] {
            guard case let .retry(wait) = plan.next(after: .server(status: 502), now: 0, random: r) else { Issue.record("no retry"); return }
            #expect(wait >= 100 && wait <= 200)
        }
        plan.started()
        guard case let .retry(second) = plan.next(after: .connect, now: 0, random: 5) else { Issue.record("no second retry"); return }
        #expect(second >= 200 && second <= 400)
        // An overload's Retry-After is the account's: waited for.
        #expect(plan.next(after: .overloaded(retryAfterMicros: 3_000_000), now: 0, random: 0) == .retry(afterMs: 3000))
        // Another key needs no wait.
        #expect(plan.next(after: .keyRefused(.unauthorized), now: 0, random: 0) == .retry(afterMs: 0))
        plan.started()
        #expect(plan.next(after: .server(status: 502), now: 0, random: 0) == .stop) // 3 attempts = 1 + 2 retries
        var late = UpstreamAttempts(retries: 5, deadline: 1_000 * ms, baseBackoffMs: 200)
        late.started()
        #expect(late.next(after: .server(status: 500), now: 950 * ms, random: 0) == .stop) // the wait would pass the deadline
        #expect(late.next(after: .final, now: 0, random: 0) == .stop)
    }

    @Test func thePoolComesFromKeysOrACommaSeparatedApiKey() throws {
        let listed = try GatewayConfig.parse(fileBytes: Array("""
            {"upstream":{"baseURL":"https://api.moonshot.cn/v1","keys":[{"key":"sk-a","name":"cn","weight":3},
             {"key":"sk-b","baseURL":"https://api.moonshot.ai/v1"}]}}
            """.utf8)).validated()
        #expect(listed.upstream.keys.map(\.name) == ["cn", "key-2"])
        #expect(listed.upstream.keys.map(\.weight) == [3, 1])
        #expect(listed.upstream.keys.map(\.baseURL) == ["https://api.moonshot.cn/v1", "https://api.moonshot.ai/v1"])
        #expect(listed.upstream.keys[0].fingerprint == SHA256.fingerprint("sk-a"))
        #expect(!listed.summary().joined().contains("sk-a")) // fingerprints only

        let env = try GatewayConfig().applying(env: ["KIMI_API_KEY": "sk-1, sk-2,sk-3"]).validated()
        #expect(env.upstream.keys.map(\.key) == ["sk-1", "sk-2", "sk-3"])
        let fromEnv = try GatewayConfig.parse(fileBytes: Array(#"{"upstream":{"keys":[{"keyEnv":"POOL_KEY_A"}]}}"#.utf8))
            .applying(env: ["POOL_KEY_A": "sk-env"]).validated()
        #expect(fromEnv.upstream.keys.map(\.key) == ["sk-env"])
        #expect(try GatewayConfig().validated().upstream.keys.count == 1) // the keyless form (simulator)

        func error(_ s: String, env: [String: String] = [:]) -> String {
            do { _ = try GatewayConfig.parse(fileBytes: Array(s.utf8)).applying(env: env).validated(); return "" } catch { return error.description }
        }
        #expect(error(#"{"upstream":{"keys":[{"key":"a","keyEnv":"B"}]}}"#).contains("exactly one of key and keyEnv"))
        #expect(error(#"{"upstream":{"keys":[{"keyEnv":"MISSING_KEY"}]}}"#).contains("MISSING_KEY is not set"))
        #expect(error(#"{"upstream":{"keys":[]}}"#).contains("at least one key"))
        #expect(error(#"{"upstream":{"keys":[{"key":"a","baseURL":"http://example.com/v1"}]}}"#).contains("baseURL"))
        #expect(error(#"{"upstream":{"keys":[{"key":"a","weight":0}]}}"#).contains("weight"))
        #expect(error(#"{"upstream":{"retries":-1}}"#).contains("retries"))
    }
}
