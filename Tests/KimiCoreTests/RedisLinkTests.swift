import Testing
@testable import KimiCore

@Suite struct RedisEndpointTests {
    @Test func readsHostPortAndDatabase() throws {
        #expect(RedisEndpoint(url: "redis://10.0.0.5:6380/3") == RedisEndpoint(host: "10.0.0.5", port: 6380, db: 3))
        #expect(RedisEndpoint(url: "redis://cache.internal") == RedisEndpoint(host: "cache.internal", port: 6379, db: 0))
        #expect(RedisEndpoint(url: "redis://[::1]:7000/1") == RedisEndpoint(host: "::1", port: 7000, db: 1))
    }

    @Test func aPasswordInTheURLIsReadButNeverPrinted() throws {
        let e = try #require(RedisEndpoint(url: "redis://:s3cret-pw@127.0.0.1:6379/0"))
        #expect(e.password == "s3cret-pw")
        #expect(!e.description.contains("s3cret"))
        #expect(RedisEndpoint.redacted("redis://user:s3cret-pw@h:1/0") == "redis://***@h:1/0")
    }

    @Test func rejectsWhatIsNotARedisURL() {
        for bad in ["http://h:6379", "redis://", "redis://h:0", "redis://h:99999", "redis://h/16", "redis://h/x", "redis://h h"] {
            #expect(RedisEndpoint(url: bad) == nil, "\(bad)")
        }
    }

    @Test func configTakesThePasswordFromTheEnvironmentAndRejectsABadURL() throws {
        var c = GatewayConfig()
        c.state.backend = .redis
        let v = try c.applying(env: ["REDIS_URL": "redis://127.0.0.1:6390/2", "REDIS_PASSWORD": "pw-from-env"]).validated()
        #expect(v.redis.endpoint == RedisEndpoint(host: "127.0.0.1", port: 6390, db: 2, password: "pw-from-env"))
        #expect(!v.summary().joined().contains("pw-from-env"))
        #expect(v.summary().contains { $0.contains("redis redis://127.0.0.1:6390/2") && $0.contains("password set") })
        do {
            _ = try c.applying(env: ["REDIS_URL": "redis://:leaked@/9"]).validated()
            Issue.record("a bad URL was accepted")
        } catch {
            #expect(error.key == "redis.url" && !error.description.contains("leaked"))
        }
        let parsed = try GatewayConfig.parse(fileBytes: Array(#"{"state": {"backend": "redis"}, "redis": {"timeoutMs": 20, "prefix": "t:"}}"#.utf8))
        #expect(parsed.state.backend == .redis && parsed.redis.timeoutMs == 20 && parsed.redis.prefix == "t:")
        #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"state": {"backend": "etcd"}}"#.utf8)) }
    }
}

@Suite struct RedisLinkTests {
    let ms: UInt64 = 1_000_000

    @Test func aFailureTakesItDownAndCallsGoToTheFileUntilTheBackoff() {
        var l = RedisLink()
        let r1 = l.admit(now: 0)
        #expect(r1)
        let r2 = l.failed(now: 10 * ms)
        #expect(r2 == .wentDown)
        let r3 = l.admit(now: 20 * ms)
        #expect(!r3)
        let r4 = l.admit(now: 109 * ms)
        #expect(!r4)
        let r5 = l.admit(now: 110 * ms)
        #expect(r5, "the first call after 100 ms probes")
        let r6 = l.admit(now: 111 * ms)
        #expect(!r6, "one probe at a time")
    }

    @Test func failedProbesDoubleTheBackoffUpToOneSecond() {
        var l = RedisLink()
        var now: UInt64 = 0
        _ = l.failed(now: now)
        var waits: [UInt64] = []
        for _ in 0..<6 {
            guard case .down(let at) = l.mode else { Issue.record("not down"); return }
            waits.append((at - now) / ms)
            now = at
            let r7 = l.admit(now: now)
            #expect(r7)
            let r8 = l.failed(now: now)
            #expect(r8 == nil, "said once, when it went down")
        }
        #expect(waits == [100, 200, 400, 800, 1000, 1000])
    }

    @Test func aSuccessfulProbeBringsItBackAndSaysForHowLong() {
        var l = RedisLink()
        _ = l.failed(now: 5 * ms)
        let r9 = l.admit(now: 200 * ms)
        #expect(r9)
        let r10 = l.succeeded(now: 205 * ms)
        #expect(r10 == .recovered(downForNanos: 200 * ms))
        #expect(l.isUp && l.admit(now: 206 * ms))
        let r11 = l.succeeded(now: 207 * ms)
        #expect(r11 == nil)
        _ = l.failed(now: 300 * ms)
        guard case .down(let at) = l.mode else { Issue.record("not down"); return }
        #expect(at == 400 * ms, "the backoff starts over")
    }

    @Test func aProbeThatNeverReportsIsReplacedAfterItsWindow() {
        var l = RedisLink()
        _ = l.failed(now: 0)
        let r12 = l.admit(now: 100 * ms)
        #expect(r12)
        let r13 = l.admit(now: 1_000 * ms)
        #expect(!r13)
        let r14 = l.admit(now: 2_100 * ms)
        #expect(r14)
    }

    @Test func lateFailuresOfCallsAlreadyUnderWayDoNotExtendTheBackoff() {
        var l = RedisLink()
        _ = l.failed(now: 0)
        let r15 = l.failed(now: 50 * ms)
        #expect(r15 == nil)
        #expect(l.mode == .down(retryAt: 100 * ms))
    }
}
