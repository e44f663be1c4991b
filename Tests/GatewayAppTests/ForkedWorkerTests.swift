import FastCGI
import Glibc
import Testing

/// Globals whose first use takes 300 ms: a worker's threads meet in their
/// `swift_once` (each test forks and touches its own in the child only).
final class SlowToMake: @unchecked Sendable { init() { usleep(300_000) } }
enum SlowGlobals {
    static let warm = SlowToMake()
    static let contended = SlowToMake()
}

@Suite struct ForkedWorkerTests {
    /// `serve --workers` forks; Swift caches a thread's id for its runtime
    /// locks, so the child's main thread locks with its parent's id and the
    /// first contention spins forever (see `Supervisor.onFreshThread`). The
    /// same scenario run directly on the child's main thread instead is
    /// killed by the alarm (checked by hand: the child never finished).
    @Test func aForkedWorkersLifeOnAFreshThreadSurvivesContendedLazyGlobals() throws {
        _ = SlowGlobals.warm // this thread's id is now cached, as the supervisor's is
        let pid = fork()
        if pid == 0 {
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGALRM)
            pthread_sigmask(SIG_UNBLOCK, &set, nil) // the test runner blocks it
            alarm(10)
            try? Supervisor.onFreshThread {
                var other = pthread_t()
                pthread_create(&other, nil, { _ in
                    usleep(100_000)
                    _ = SlowGlobals.contended // waits on the lock the body's thread holds
                    return nil
                }, nil)
                _ = SlowGlobals.contended
                pthread_join(other, nil)
            }
            _exit(0)
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status & 0x7f == 0, "the child was killed by signal \(status & 0x7f) (14: it hung)")
        #expect((status >> 8) & 0xff == 0)
    }
}
