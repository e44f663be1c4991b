import Testing
@testable import KimiCore

@Suite struct GCRATests {
    // 10 per 10 s: one every second, bursts of 10.
    let g = GCRA(.init(windowMs: 10_000, maxRequests: 10))
    let t0: Int64 = 1_000_000_000_000

    @Test func freshClientGetsExactlyTheLimitAsABurst() throws {
        var tat: Int64 = 0
        var remaining: [Int] = []
        for _ in 0..<10 {
            let d = g.decide(tat: tat, now: t0)
            #expect(d.allowed)
            tat = d.newTAT
            remaining.append(d.remaining)
        }
        #expect(remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
        let refused = g.decide(tat: tat, now: t0)
        #expect(!refused.allowed && refused.retryAfterSeconds == 1 && refused.resetSeconds == 10)
    }

    @Test func remainingCountsDownWhenRequestsArriveMicrosecondsApart() throws {
        var tat: Int64 = 0
        var remaining: [Int] = []
        for i in 0..<10 {
            let d = g.decide(tat: tat, now: t0 + Int64(i) * 37)
            tat = d.newTAT
            remaining.append(d.remaining)
        }
        #expect(remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    }

    @Test func oneMoreAfterEachIntervalExactlyAtTheEdge() throws {
        var tat: Int64 = 0
        for _ in 0..<10 { tat = g.decide(tat: tat, now: t0).newTAT }
        #expect(!g.decide(tat: tat, now: t0 + 999_999).allowed) // 1 µs before the edge
        let d = g.decide(tat: tat, now: t0 + 1_000_000)          // at the edge
        #expect(d.allowed && d.remaining == 0)
        #expect(!g.decide(tat: d.newTAT, now: t0 + 1_000_000).allowed)
    }

    @Test func fullRecoveryAfterAWindow() throws {
        var tat: Int64 = 0
        for _ in 0..<10 { tat = g.decide(tat: tat, now: t0).newTAT }
        let d = g.decide(tat: tat, now: t0 + 10_000_000)
        #expect(d.allowed && d.remaining == 9)
    }

    @Test func aCorruptWordIsClampedToOneWindowNotATrap() throws {
        for garbage in [Int64.max, Int64.max - 5, t0 + 1_000_000_000_000] {
            let d = g.decide(tat: garbage, now: t0)
            #expect(!d.allowed && d.retryAfterSeconds <= 10 && d.resetSeconds <= 10)
        }
        #expect(g.decide(tat: Int64.min, now: t0).allowed)
        // Clamped to now + W, i.e. "just used its whole burst": the next
        // request is admitted one interval (W/L = 1 s) later, and the full
        // quota is back one window later.
        let clampedTAT = t0 + 10_000_000
        #expect(!g.decide(tat: clampedTAT, now: t0 + 999_999).allowed)
        #expect(g.decide(tat: clampedTAT, now: t0 + 1_000_000).allowed)
        #expect(g.decide(tat: clampedTAT, now: t0 + 10_000_000).remaining == 9)
    }

    @Test func neverMoreThanTwiceTheLimitInAnyWindow() throws {
        // A client that tries every 10 ms for 30 s: count admissions in every
        // 10 s sliding window.
        var tat: Int64 = 0
        var admitted: [Int64] = []
        var now = t0
        while now < t0 + 30_000_000 {
            let d = g.decide(tat: tat, now: now)
            if d.allowed { tat = d.newTAT; admitted.append(now) }
            now += 10_000
        }
        for (i, start) in admitted.enumerated() {
            let inWindow = admitted[i...].prefix { $0 < start + 10_000_000 }.count
            #expect(inWindow <= 2 * 10 - 1)
        }
        #expect(admitted.count <= 10 + 30 + 1)
    }
}

@Suite struct MemoryLimiterTests {
    @Test func manyThreadsHammeringOneKeyAdmitExactlyTheLimit() async throws {
        let limiter = RateLimiter(store: MemoryRateLimitStore())
        let g = GCRA(.init(windowMs: 3_600_000, maxRequests: 100))
        let now = Clock.wallMicros()
        let admitted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<500).reduce(0) { n, _ in n + (limiter.check(key: 42, policy: g, now: now)!.allowed ? 1 : 0) } }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted == 100)
    }

    @Test func keysAreIndependentAndStable() throws {
        #expect(RateLimiter.key(client: "ip:1.2.3.4", policy: "default") == RateLimiter.key(client: "ip:1.2.3.4", policy: "default"))
        #expect(RateLimiter.key(client: "ip:1.2.3.4", policy: "default") != RateLimiter.key(client: "ip:1.2.3.5", policy: "default"))
        #expect(RateLimiter.key(client: "a", policy: "bc") != RateLimiter.key(client: "ab", policy: "c"))
    }

    @Test func fullStoreEvictsTheStalest() throws {
        let store = MemoryRateLimitStore(capacity: 2)
        let limiter = RateLimiter(store: store)
        let g = GCRA(.init(windowMs: 1000, maxRequests: 1))
        let t: Int64 = 5_000_000
        #expect(limiter.check(key: 1, policy: g, now: t)!.allowed)
        #expect(limiter.check(key: 2, policy: g, now: t + 10)!.allowed)
        #expect(limiter.check(key: 3, policy: g, now: t + 20)!.allowed) // evicts key 1
        #expect(limiter.check(key: 2, policy: g, now: t + 30)!.allowed == false)
    }
}

@Suite struct ClientIdentityTests {
    @Test func peerAddressWithoutTrustedProxies() throws {
        #expect(ClientIdentity.address(remoteAddr: "10.0.0.9", forwardedFor: "1.1.1.1", trustedProxies: []) == "10.0.0.9")
    }

    @Test func spoofedForwardedForFromAnUntrustedPeerIsIgnored() throws {
        #expect(ClientIdentity.address(remoteAddr: "10.0.0.9", forwardedFor: "1.1.1.1", trustedProxies: ["10.0.0.1"]) == "10.0.0.9")
    }

    @Test func rightMostUntrustedHopBehindTrustedProxies() throws {
        let a = ClientIdentity.address(remoteAddr: "10.0.0.1", forwardedFor: "6.6.6.6, 2.2.2.2, 10.0.0.2", trustedProxies: ["10.0.0.1", "10.0.0.2"])
        #expect(a == "2.2.2.2") // 6.6.6.6 is whatever the client claimed
    }

    @Test func garbageHopStopsTheWalk() throws {
        #expect(ClientIdentity.address(remoteAddr: "10.0.0.1", forwardedFor: "evil\r\nx", trustedProxies: ["10.0.0.1"]) == "10.0.0.1")
    }

    @Test func apiKeyWinsOverAddress() throws {
        #expect(ClientIdentity.of(remoteAddr: "1.2.3.4", forwardedFor: nil, trustedProxies: [], apiKeyHash: "abc") == "key:abc")
    }
}

@Suite struct RateLimitHeaderTests {
    @Test func draftAndLegacyHeaders() throws {
        let g = GCRA(.init(windowMs: 900_000, maxRequests: 100))
        let d = g.decide(tat: 0, now: 1_000_000_000)
        let h = Dictionary(uniqueKeysWithValues: RateLimitHeaders.headers(gcra: g, decision: d, nowMicros: 1_000_000_000))
        #expect(h["RateLimit-Policy"] == #""requests"; q=100; w=900"#)
        #expect(h["RateLimit"] == #""requests"; r=99; t=9"#)
        #expect(h["X-RateLimit-Limit"] == "100" && h["X-RateLimit-Remaining"] == "99")
        #expect(h["X-RateLimit-Reset"] == "1009")
    }
}
