import Glibc
import Testing
@testable import KimiCore
@testable import SharedMemory

@Suite(.serialized) struct MappedRateLimitStoreTests {
    let dir = ForkedProcesses.temporaryDirectory("kimi-limiter-test")

    @Test func fileIsCreatedPrivate() throws {
        let store = MappedRateLimitStore(path: dir + "/rl.bin", capacity: 128)
        _ = RateLimiter(store: store).check(key: 1, policy: GCRA(.init(windowMs: 1000, maxRequests: 1)))
        var st = stat()
        #expect(stat(dir + "/rl.bin", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(Int(st.st_size) == 64 + 128 * 16)
    }

    @Test func manyThreadsHammeringOneKeyAdmitExactlyTheLimit() async throws {
        let limiter = RateLimiter(store: MappedRateLimitStore(path: dir + "/threads.bin", capacity: 256))
        let g = GCRA(.init(windowMs: 3_600_000, maxRequests: 100))
        let now = Clock.wallMicros()
        let admitted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<1000).reduce(0) { n, _ in n + (limiter.check(key: 7, policy: g, now: now)!.allowed ? 1 : 0) } }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted == 100)
    }

    @Test func forkedProcessesHammeringOneFileAdmitExactlyTheLimit() throws {
        let path = dir + "/procs.bin"
        let g = GCRA(.init(windowMs: 3_600_000, maxRequests: 50))
        let counts = ForkedProcesses.together(4, warmUp: {
            _ = RateLimiter(store: MappedRateLimitStore(path: path, capacity: 1024)).check(key: 999, policy: g)
        }) {
            // A fresh store per process, as each gateway process has.
            let mine = RateLimiter(store: MappedRateLimitStore(path: path, capacity: 1024))
            var n: Int32 = 0
            for _ in 0..<400 where mine.check(key: 12345, policy: g)!.allowed { n += 1 }
            return n
        }
        #expect(!counts.contains(-1))
        let total = counts.reduce(0, +)
        #expect(total == 50)
    }

    @Test func corruptFileIsRecreated() throws {
        let path = dir + "/corrupt.bin"
        FileIO.write(path, Array(repeating: 0xAB, count: 64 + 128 * 16), mode: 0o600)
        let store = MappedRateLimitStore(path: path, capacity: 128)
        let limiter = RateLimiter(store: store)
        #expect(limiter.check(key: 5, policy: GCRA(.init(windowMs: 1000, maxRequests: 3)))?.allowed == true)
        #expect(store.recreations == 1)
    }

    @Test func truncatedFileIsRecreated() throws {
        let path = dir + "/short.bin"
        FileIO.write(path, Array(repeating: 0, count: 10), mode: 0o600)
        let store = MappedRateLimitStore(path: path, capacity: 128)
        #expect(RateLimiter(store: store).check(key: 5, policy: GCRA(.init(windowMs: 1000, maxRequests: 3)))?.allowed == true)
        #expect(store.recreations == 1)
        var st = stat()
        stat(path, &st)
        #expect(Int(st.st_size) == 64 + 128 * 16)
    }

    @Test func stateSurvivesReopening() throws {
        let path = dir + "/reopen.bin"
        let g = GCRA(.init(windowMs: 3_600_000, maxRequests: 2))
        let now = Clock.wallMicros()
        let a = RateLimiter(store: MappedRateLimitStore(path: path, capacity: 128))
        #expect(a.check(key: 9, policy: g, now: now)!.allowed)
        #expect(a.check(key: 9, policy: g, now: now)!.allowed)
        let b = RateLimiter(store: MappedRateLimitStore(path: path, capacity: 128))
        #expect(b.check(key: 9, policy: g, now: now)!.allowed == false)
    }

    @Test func fullTableEvictsAndKeepsServing() throws {
        let store = MappedRateLimitStore(path: dir + "/full.bin", capacity: 64)
        let limiter = RateLimiter(store: store)
        let g = GCRA(.init(windowMs: 1000, maxRequests: 1))
        let now = Clock.wallMicros()
        for k in 1...500 { #expect(limiter.check(key: UInt64(k), policy: g, now: now) != nil) }
        // A key seen just now is still limited (it was not the stalest).
        #expect(limiter.check(key: 500, policy: g, now: now)?.allowed == false)
    }

    @Test func unusableFileGivesNilForTheFallback() throws {
        let store = MappedRateLimitStore(path: "/proc/kimi-no-such-dir/rl.bin", capacity: 64)
        #expect(store.slot(for: 1, now: 0) == nil)
    }
}
