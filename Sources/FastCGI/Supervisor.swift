import Glibc
import KimiCore

/// `serve --workers N`: a single-threaded parent that forks N workers sharing
/// the listening socket and starts a new one whenever a worker dies (a trap
/// in a handler, an abort in libfcgi on a crafted record). SIGTERM/SIGINT are
/// passed on to the workers, which drain; the parent exits 0 when all have.
/// SIGHUP is passed on too: everyone reopens the log file.
public enum Supervisor {
    /// Returns in the child (true) to become a worker — `restarted` when it
    /// replaces one that died (counted in `worker_restarts_total`) — or runs
    /// the parent loop and returns false when the parent is done.
    public static func forkWorkers(_ n: Int, onHangup: () -> Void) -> (isWorker: Bool, status: Int32, restarted: Bool) {
        var children = Set<pid_t>()
        var stopping = false
        let parent = getpid()
        func spawnOne() -> Bool {
            let pid = fork()
            if pid == 0 {
                // A supervisor killed with SIGKILL cannot stop its workers:
                // the kernel sends them SIGTERM instead, they drain and exit,
                // and systemd's restart starts a clean set. The
                // parent may have died before the prctl: check once after.
                Signals.terminateWithParent()
                if getppid() != parent { kill(getpid(), SIGTERM) }
                return true
            }
            if pid > 0 { children.insert(pid) } else { Log.error("fork failed: \(String(cString: strerror(errno)))") }
            return false
        }
        for _ in 0..<n where spawnOne() { return (true, 0, false) }
        Log.info("supervisor pid \(getpid()): \(n) workers \(children.sorted().map(String.init).joined(separator: " "))")
        // SIGTERM/SIGINT/SIGHUP are blocked (Signals.install); SIGCHLD joins them.
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var restarts: [UInt64] = []
        while !children.isEmpty {
            var sig: Int32 = 0
            sigwait(&set, &sig)
            if sig == SIGTERM || sig == SIGINT {
                stopping = true
                Log.info("supervisor: stopping \(children.count) workers")
                for c in children { kill(c, SIGTERM) }
                continue
            }
            if sig == SIGHUP {
                // logrotate: the supervisor and every worker reopen the log file.
                onHangup()
                for c in children { kill(c, SIGHUP) }
                continue
            }
            if sig != SIGCHLD { continue }
            while true {
                var status: Int32 = 0
                let pid = waitpid(-1, &status, WNOHANG)
                if pid <= 0 { break }
                children.remove(pid)
                if stopping { continue }
                Log.error("worker \(pid) died (\(describe(status))); starting a new one")
                // Crash loop guard: more than 10 restarts in 10 s slows down.
                let now = Clock.monotonicNanos()
                restarts = restarts.filter { now &- $0 < 10_000_000_000 } + [now]
                if restarts.count > 10 { sleep(1) }
                if spawnOne() { return (true, 0, true) }
            }
        }
        Log.info("supervisor: all workers exited")
        return (false, 0, false)
    }

    static func describe(_ status: Int32) -> String {
        let sig = status & 0x7f
        if sig != 0 { return "signal \(sig)" }
        return "exit \((status >> 8) & 0xff)"
    }

    /// Runs a forked worker's life on a new thread while the process's main
    /// thread only waits for it. Swift's runtime locks (the futex locks
    /// behind `swift_once` and metadata caches) cache the thread id in a
    /// thread-local on first use (swift/Threading/Impl/Linux/ulock.h): after
    /// fork the child's main thread still holds its parent's id, and the
    /// first lock it holds while another thread waits turns into two
    /// threads spinning forever (FUTEX_LOCK_PI names an owner that does not
    /// exist; seen twice: a worker at 130 % CPU in `once_slow` with its
    /// main thread logging the start-up line while the pool's manager
    /// logged too, and once after SIGHUP). A new thread starts with no id cached.
    public static func onFreshThread(stackBytes: Int = 8 << 20, _ body: @escaping () throws -> Void) throws {
        final class Box: @unchecked Sendable {
            let body: () throws -> Void
            var result: Result<Void, Error>?
            init(_ body: @escaping () throws -> Void) { self.body = body }
        }
        let box = Box(body)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, stackBytes)
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeUnretainedValue()
            box.result = Result { try box.body() }
            return nil
        }, Unmanaged.passUnretained(box).toOpaque())
        pthread_attr_destroy(&attr)
        guard rc == 0 else { return try body() }
        pthread_join(tid, nil)
        try box.result!.get()
    }
}

