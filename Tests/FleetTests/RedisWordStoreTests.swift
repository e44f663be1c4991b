import Glibc
import Testing
@testable import Fleet
@testable import KimiCore
@testable import GatewayApp
import Storage

/// The fleet's scripts on a real Redis: the same decisions as the file's
/// Swift GCRA, one round trip each, and the fallback's contract (a dead or
/// hung Redis costs at most one timeout, then none until it is back).
@Suite(.serialized) struct RedisWordStoreTests {
    func store(_ server: RedisServer, timeoutMs: Int = 200, password: String = "") -> RedisWordStore {
        RedisWordStore(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port, password: password),
                       timeoutMs: timeoutMs, prefix: "test:")
    }

    func raw(_ server: RedisServer, _ args: [String]) throws -> RedisConnection.Reply {
        try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port, password: server.password ?? ""), timeoutMs: 1000)
            .command(args)
    }

    @Test func requestGCRAAdmitsExactlyTheLimitAndAgreesWithTheSwiftDecision() throws {
        let server = try RedisServer()
        let s = store(server)
        let policy = GCRA(.init(windowMs: 60_000, maxRequests: 10))
        var admitted = 0
        for _ in 0..<25 {
            let r = try #require(s.step(slot: 42, cost: policy.interval, window: policy.windowMicros))
            let d = policy.decide(tat: r.stored, now: r.now)
            #expect(d.allowed == r.admitted)
            if r.admitted { admitted += 1 }
        }
        #expect(admitted == 10)
        // The word expires when its TAT has passed: nothing grows without bound.
        let ttl = try raw(server, ["PTTL", s.key(42)]).integer ?? -1
        #expect(ttl > 0 && ttl <= 61_000)
    }

    @Test func tokenReservationsAndRefundsMoveTheSameWord() throws {
        let server = try RedisServer()
        let s = store(server)
        let policy = TokenGCRA(tokensPerMinute: 1000)
        let first = try #require(s.step(slot: 7, cost: policy.span(600), window: policy.windowMicros))
        #expect(first.admitted)
        let second = try #require(s.step(slot: 7, cost: policy.span(600), window: policy.windowMicros))
        #expect(!second.admitted && !policy.reserve(tokens: 600, tat: second.stored, now: second.now).allowed)
        // 300 of the 600 went unused: refunded, the next 600 fit.
        #expect(s.settle(slot: 7, span: -policy.span(300), window: policy.windowMicros))
        let third = try #require(s.step(slot: 7, cost: policy.span(600), window: policy.windowMicros))
        #expect(third.admitted)
    }

    @Test func compareExchangeSetsOnlyFromTheExpectedWordAndZeroDeletes() throws {
        let server = try RedisServer()
        let s = store(server)
        #expect(s.load(slot: 9) == 0)
        #expect(try #require(s.compareExchange(slot: 9, expected: 0, desired: 77, ttlMillis: 5_000)) == (true, 77))
        #expect(try #require(s.compareExchange(slot: 9, expected: 0, desired: 88, ttlMillis: 5_000)) == (false, 77))
        #expect(s.load(slot: 9) == 77)
        #expect(try #require(s.compareExchange(slot: 9, expected: 77, desired: 0, ttlMillis: 5_000)) == (true, 0))
        #expect(try raw(server, ["EXISTS", s.key(9)]).integer == 0)
    }

    @Test func aRecentWordIsAnsweredWithoutARoundTripAndACompareAndSetRefreshesIt() throws {
        let server = try RedisServer()
        let s = store(server)
        let minute: UInt64 = 60_000_000_000
        #expect(s.load(slot: 11, maxAgeNanos: minute) == 0)
        _ = try raw(server, ["SET", s.key(11), "5"]) // another machine's change
        #expect(s.load(slot: 11, maxAgeNanos: minute) == 0, "this process's copy, within its age")
        #expect(s.load(slot: 11) == 5, "no age: from Redis")
        _ = try raw(server, ["SET", s.key(11), "6"])
        // A compare-and-set from the stale copy fails and brings the current word.
        #expect(try #require(s.compareExchange(slot: 11, expected: 5, desired: 9, ttlMillis: 5_000)) == (false, 6))
        #expect(s.load(slot: 11, maxAgeNanos: minute) == 6)
        #expect(try #require(s.compareExchange(slot: 11, expected: 6, desired: 9, ttlMillis: 5_000)) == (true, 9))
        #expect(s.load(slot: 11, maxAgeNanos: minute) == 9)
    }

    @Test func scriptsAreLoadedAgainAfterRedisForgetsThem() throws {
        let server = try RedisServer()
        let s = store(server)
        #expect(s.step(slot: 1, cost: 1, window: 1_000_000) != nil)
        _ = try raw(server, ["SCRIPT", "FLUSH"])
        #expect(s.step(slot: 1, cost: 1, window: 1_000_000) != nil)
        #expect(s.isUp)
    }

    @Test func aHungRedisCostsOneTimeoutThenTheFileDecidesUntilItIsBack() throws {
        let server = try RedisServer()
        let s = store(server, timeoutMs: 100)
        #expect(s.step(slot: 3, cost: 1, window: 1_000_000) != nil)
        server.pause()
        let t0 = Clock.monotonicNanos()
        #expect(s.step(slot: 3, cost: 1, window: 1_000_000) == nil)
        let waited = Clock.monotonicNanos() - t0
        #expect(waited >= 90_000_000 && waited < 1_000_000_000, "one timeout, not a hang: \(waited / 1_000_000) ms")
        #expect(!s.isUp)
        let t1 = Clock.monotonicNanos()
        #expect(s.step(slot: 3, cost: 1, window: 1_000_000) == nil)
        #expect(Clock.monotonicNanos() - t1 < 50_000_000, "down: no call waits on Redis")
        server.resume()
        var back = false
        for _ in 0..<300 where !back {
            usleep(10_000)
            back = s.step(slot: 3, cost: 1, window: 1_000_000) != nil
        }
        #expect(back && s.isUp, "back within the 1 s backoff cap")
    }

    @Test func aKilledRedisFailsOverAndARestartedOneIsUsedAgain() throws {
        let server = try RedisServer()
        let s = store(server)
        #expect(s.load(slot: 5) == 0)
        server.stop()
        #expect(s.load(slot: 5) == nil)
        try server.start()
        var back = false
        for _ in 0..<300 where !back {
            usleep(10_000)
            back = s.load(slot: 5) != nil
        }
        #expect(back)
    }

    @Test func aRedisRestartedWhileThisProcessWasIdleCostsNoCallItsSharedLimit() throws {
        let server = try RedisServer()
        let s = store(server)
        #expect(s.load(slot: 5) == 0) // a connection is now pooled
        server.stop()
        try server.start()
        // The pooled connection is closed: the call goes again on a fresh one.
        #expect(s.step(slot: 5, cost: 1, window: 1_000_000)?.admitted == true)
        #expect(s.isUp)
    }

    @Test func usageAddsUpPerKeyAndPeriodAndExpiresAfterThePeriod() throws {
        let server = try RedisServer()
        let s = store(server)
        // Today: an expiry in the past would delete the hash at once.
        let today = UsagePeriod.day(containing: Clock.wallMicros() / 1000).from + 1
        let later = today + 40 * 86_400_000
        #expect(s.addUsage(fingerprint: "fp1", at: today, UsageCounts(requests: 1, promptTokens: 10, completionTokens: 5, costMicros: 120)))
        #expect(s.addUsage(fingerprint: "fp1", at: today + 1000, UsageCounts(requests: 1, promptTokens: 3, completionTokens: 2, costMicros: 7)))
        #expect(s.addUsage(fingerprint: "fp2", at: today, UsageCounts(requests: 1, promptTokens: 100, completionTokens: 0)))
        let spent = try #require(s.usage(fingerprint: "fp1", now: today + 2000))
        #expect(spent.day == UsageCounts(requests: 2, promptTokens: 13, completionTokens: 7, totalTokens: 20, costMicros: 127))
        #expect(spent.month == spent.day)
        // 40 days on: a new day and a new month.
        #expect(try #require(s.usage(fingerprint: "fp1", now: later)) == UsageBook.Spent())
        let keys = s.usageKeys(fingerprint: "fp1", day: .day(containing: today), month: .month(containing: today))
        #expect(try raw(server, ["PEXPIRETIME", keys[0]]).integer == UsagePeriod.day(containing: today).to + 86_400_000)
        #expect(try raw(server, ["PEXPIRETIME", keys[1]]).integer == UsagePeriod.month(containing: today).to + 86_400_000)
    }

    @Test func aWrongPasswordIsAFailureNotAnAnswer() throws {
        let server = try RedisServer(password: "right-password")
        #expect(store(server, password: "wrong").step(slot: 1, cost: 1, window: 1_000_000) == nil)
        #expect(store(server).step(slot: 1, cost: 1, window: 1_000_000) == nil, "no password at all")
        #expect(store(server, password: "right-password").step(slot: 1, cost: 1, window: 1_000_000) != nil)
        do {
            _ = try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port, password: "wrong"), timeoutMs: 500)
            Issue.record("AUTH with a wrong password was accepted")
        } catch {
            #expect(error.description.contains("AUTH refused") && !error.description.contains("wrong"))
        }
    }
}

/// Created keys across a fleet (issue #31): two machines' key stores synced
/// through one real Redis.
@Suite(.serialized) struct KeyFleetSyncTests {
    @Test func aKeyCreatedOnOneMachineIsAdoptedByTheOtherAndARevocationTravelsBack() throws {
        let server = try RedisServer()
        let fleet = RedisWordStore(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeoutMs: 500, prefix: "t:")
        let (_, a) = try KeyStoreFleet.fresh(), (_, b) = try KeyStoreFleet.fresh()
        var syncA = KeyFleetSync(), syncB = KeyFleetSync()
        let (created, _) = try a.create(name: "dev", spec: ["name": "dev"], expiresAtMs: nil)
        #expect(try syncA.sync(store: a, fleet: fleet) == .init(adopted: 0, published: 1))
        #expect(try syncB.sync(store: b, fleet: fleet) == .init(adopted: 1, published: 0))
        #expect(try b.get(created.id) == a.get(created.id))
        // Nothing changed: a look is one GET each and does nothing.
        #expect(try syncA.sync(store: a, fleet: fleet) == .init() && syncB.sync(store: b, fleet: fleet) == .init())
        // Revoked on B; A adopts it, and A's older rename afterwards does not bring it back.
        _ = try b.revoke(created.id, nowMs: Clock.wallMicros() / 1000 + 10)
        _ = try syncB.sync(store: b, fleet: fleet)
        _ = try a.update(created.id, nowMs: Clock.wallMicros() / 1000 + 20) { $0.name = "renamed" }
        _ = try syncA.sync(store: a, fleet: fleet)
        _ = try syncB.sync(store: b, fleet: fleet)
        #expect(try a.get(created.id)?.revokedAtMs != nil && b.get(created.id)?.revokedAtMs != nil)
        #expect(try a.get(created.id)!.apiKeys(nowMs: 0).isEmpty)
        // A Redis that lost everything gets the machines' keys back at their next look.
        _ = try RedisConnection(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeoutMs: 1000).command(["FLUSHALL"])
        #expect(try syncA.sync(store: a, fleet: fleet)?.published == 1)
        #expect(fleet.keyEntries()?.count == 1)
    }

    @Test func putKeepsTheNewerEntryAndMovesTheGenerationOnlyOnAChange() throws {
        let server = try RedisServer()
        let fleet = RedisWordStore(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port), timeoutMs: 500, prefix: "t:")
        #expect(fleet.keysGeneration() == 0)
        #expect(fleet.putKeyEntries([("key_1", 200, "{\"v\":2}")]) == 1)
        #expect(fleet.putKeyEntries([("key_1", 100, "{\"v\":1}")]) == 1) // older: kept out, no new generation
        #expect(fleet.keyEntries() == ["key_1": "{\"v\":2}"])
        #expect(fleet.putKeyEntries([("key_1", 200, "{\"v\":3}"), ("key_2", 1, "{}")]) == 2) // a tie: the larger text
        #expect(fleet.keyEntries() == ["key_1": "{\"v\":3}", "key_2": "{}"])
    }
}

enum KeyStoreFleet {
    static func fresh() throws -> (String, KeyStore) {
        var template = Array("/tmp/kimi-fleetkeys-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        return (dir, try KeyStore(database: try SQLiteDatabase(path: dir + "/gateway.db")))
    }
}
