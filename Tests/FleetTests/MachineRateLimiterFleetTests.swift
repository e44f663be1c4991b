import Glibc
import Testing
@testable import GatewayApp
@testable import KimiCore

/// The limiter every request asks (`MachineRateLimiter`) with
/// `state.backend` redis: Redis decides while it answers, the machine's
/// file when it does not (counted by `onFallback`), and a reloaded config
/// moves the decisions between them without a restart.
@Suite(.serialized) struct MachineRateLimiterFleetTests {
    final class Counter: @unchecked Sendable { var n = 0 }

    func configs(_ server: RedisServer) throws -> (file: GatewayConfig, redis: GatewayConfig) {
        var dir = Array("/tmp/kimi-fleet-XXXXXX".utf8CString)
        let d = String(cString: mkdtemp(&dir)!)
        var c = GatewayConfig()
        c.rateLimit.file = d + "/ratelimit.bin"
        c.rateLimit.tableSize = 1024
        c.redis.url = "redis://127.0.0.1:\(server.port)/0"
        c.redis.prefix = "mrl-\(getpid()):"
        let file = try c.validated()
        c.state.backend = .redis
        return (file, try c.validated())
    }

    @Test func redisDecidesWhileItAnswersAndTheFileWhenItDoesNot() throws {
        let server = try RedisServer()
        let (fileConfig, redisConfig) = try configs(server)
        let limiter = MachineRateLimiter()
        let fallbacks = Counter()
        limiter.onFallback = { _ in fallbacks.n += 1 }
        let policy = GCRA(.init(windowMs: 3_600_000, maxRequests: 3))
        let now = Clock.wallMicros()
        let onRedis = (0..<5).map { _ in limiter.check(key: 77, policy: policy, config: redisConfig, now: now).allowed }
        #expect(onRedis == [true, true, true, false, false])
        #expect(fallbacks.n == 0)
        // A reload back to the file: its table has not seen this client.
        #expect(limiter.check(key: 77, policy: policy, config: fileConfig, now: now).allowed)
        // Redis gone: the file decides (its own exact limit), and each such decision is counted.
        server.stop()
        let onFile = (0..<4).map { _ in limiter.check(key: 77, policy: policy, config: redisConfig, now: now).allowed }
        #expect(onFile == [true, true, false, false], "the file's 3, one of them used above")
        #expect(fallbacks.n == 4)
        // Back: Redis remembers nothing (no persistence) and decides again within the backoff cap.
        try server.start()
        var shared = false
        for _ in 0..<300 where !shared {
            usleep(10_000)
            _ = limiter.check(key: 78, policy: policy, config: redisConfig, now: now) // a probe, once the backoff allows
            shared = limiter.fleetStore(for: redisConfig)?.isUp == true
        }
        #expect(shared)
        #expect(limiter.check(key: 77, policy: policy, config: redisConfig, now: now).allowed)
    }

    @Test func keyHealthChangesGoThroughRedisCompareAndSet() throws {
        let server = try RedisServer()
        let (_, redisConfig) = try configs(server)
        let limiter = MachineRateLimiter()
        let slot: UInt64 = 4242
        let now = Clock.wallMicros()
        let cooling = KeyHealth(condition: .cooling, reason: .rateLimited, until: now + 5_000_000).word
        let changed: Bool = limiter.update(key: slot, config: redisConfig, now: now) { w in w == 0 ? (cooling, true) : (nil, false) }
        #expect(changed)
        // Another machine's limiter (another instance) reads the same word.
        let other = MachineRateLimiter()
        #expect(other.update(key: slot, config: redisConfig, now: now) { w in (nil, w) } == cooling)
    }
}
