import CFastCGI
import Glibc
import KimiCore

/// Worker threads that each loop on FCGX_Accept_r / FCGX_Finish_r. A request
/// holds its thread for its whole life (an SSE stream can last minutes), so
/// the pool starts `minThreads` and starts one more whenever the last idle
/// thread takes a request, up to `maxThreads`. Threads are not shrunk: an
/// idle thread costs a few tens of KiB of touched stack.
///
/// Shutdown: `stop()` sets the flag and interrupts threads blocked in
/// accept() with SIGUSR1 (installed without SA_RESTART, and requests are
/// initialised with FCGI_FAIL_ACCEPT_ON_INTR so libfcgi returns instead of
/// retrying); threads serving a request finish it, then exit.
public final class WorkerPool: @unchecked Sendable {
    public typealias Handler = (FastCGIExchange) -> Void

    private let fd: Int32
    private let minThreads: Int
    private let maxThreads: Int
    private let stackBytes: Int
    private let handler: Handler
    private let lock = Lock()
    private var total = 0
    private var idle = 0
    private var active = 0
    private var accepting = Set<UInt>()
    private var stopping = false
    private var exited = 0

    public init(fd: Int32, minThreads: Int, maxThreads: Int, stackBytes: Int = 512 << 10, handler: @escaping Handler) {
        self.fd = fd
        self.minThreads = max(1, minThreads)
        self.maxThreads = max(self.minThreads, maxThreads)
        self.stackBytes = stackBytes
        self.handler = handler
    }

    public struct Stats { public let threads: Int; public let idle: Int; public let active: Int }
    public var stats: Stats { lock.withLock { Stats(threads: total, idle: idle, active: active) } }

    public func start() {
        FCGX_Init()
        for _ in 0..<minThreads { spawn() }
    }

    private func spawn() {
        let grown: Bool = lock.withLock {
            guard !stopping, total < maxThreads else { return false }
            total += 1
            return true
        }
        guard grown else { return }
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, stackBytes)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { arg in
            let pool = Unmanaged<WorkerPool>.fromOpaque(arg!).takeRetainedValue()
            pool.loop()
            return nil
        }, box)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<WorkerPool>.fromOpaque(box).release()
            lock.withLock { total -= 1 }
            Log.error("cannot start a worker thread: \(String(cString: strerror(rc))) (\(stats.threads) running)")
        }
    }

    private func loop() {
        var request = FCGX_Request()
        FCGX_InitRequest(&request, fd, FCGI_FAIL_ACCEPT_ON_INTR)
        let me = UInt(pthread_self())
        var failures = 0
        while true {
            let go: Bool = lock.withLock {
                if stopping { return false }
                idle += 1
                accepting.insert(me)
                return true
            }
            guard go else { break }
            let rc = FCGX_Accept_r(&request)
            var growNow = false
            let stop: Bool = lock.withLock {
                idle -= 1
                accepting.remove(me)
                if rc >= 0 { active += 1; growNow = idle == 0 && total < maxThreads }
                return stopping && rc < 0
            }
            if stop { break }
            if rc < 0 {
                // EINTR from a stray signal, or a transient accept error.
                failures += 1
                if failures > 3 { usleep(10_000) }
                continue
            }
            failures = 0
            if growNow { spawn() }
            withUnsafeMutablePointer(to: &request) { req in
                let exchange = FastCGIExchange(request: req)
                handler(exchange)
            }
            FCGX_Finish_r(&request)
            lock.withLock { active -= 1 }
        }
        FCGX_Free(&request, 0)
        lock.withLock { total -= 1; exited += 1 }
    }

    /// Stops accepting and waits for in-flight requests up to `drainNanos`.
    /// Returns the number of requests still running when it gave up.
    public func stop(drainNanos: UInt64) -> Int {
        lock.withLock { stopping = true }
        FCGX_ShutdownPending()
        let deadline = Clock.monotonicNanos() &+ drainNanos
        while true {
            let (waiting, running, threads) = lock.withLock { (Array(accepting), active, total) }
            // Re-sent until every accepting thread has left accept(): a thread
            // that was between its flag check and accept() missed the first.
            for t in waiting { pthread_kill(pthread_t(t), SIGUSR1) }
            if threads == 0 || (running == 0 && waiting.isEmpty) { return 0 }
            if Clock.monotonicNanos() >= deadline { return running }
            usleep(20_000)
        }
    }
}

/// Process-wide signal set-up for a responder.
public enum Signals {
    /// SIGPIPE ignored (a gone client is an EPIPE, not a death); SIGUSR1 a
    /// no-op without SA_RESTART, used to interrupt accept(); SIGTERM/SIGINT
    /// blocked in every thread so that `waitForTermination` gets them.
    public static func install() {
        signal(SIGPIPE, SIG_IGN)
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        sigaction(SIGUSR1, &sa, nil)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Blocks the calling thread until SIGTERM or SIGINT; SIGHUP is logged and ignored.
    public static func waitForTermination() -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        while true {
            var sig: Int32 = 0
            if sigwait(&set, &sig) == 0 {
                if sig == SIGHUP { Log.info("SIGHUP ignored: the config is reloaded automatically when its file changes"); continue }
                return sig
            }
        }
    }
}
