import CFastCGI
import Glibc
import KimiCore
import Synchronization

/// Worker threads that each loop on FCGX_Accept_r / FCGX_Finish_r. A request
/// holds its thread for its whole life (an SSE stream can last minutes), and
/// with `fastcgi_keep_conn on` a thread also stays with its connection
/// between requests. So the pool starts `minThreads`, and a manager thread
/// adds threads (+25 % a tick, at most 16, up to `maxThreads`) whenever no thread has
/// entered a listening accept() for 2 ms: long requests and kept
/// connections get threads, while short requests are served by the few
/// threads there are, straight from the kernel's accept queue (the rule and
/// its measurement: `PoolGrowth`). While threads wait in accept() the
/// manager sleeps, and the thread that takes the last place wakes it
/// (`PoolManagerRhythm`). Threads are not shrunk: an
/// idle thread costs a few tens of KiB of touched stack.
///
/// Intake: the pool accepts connections itself (`accept4`) and hands the
/// connected socket to libfcgi, whose own listening socket is -1: a
/// connection that fails inside `FCGX_Accept_r` then returns an error to us
/// instead of falling through to an accept() the pool cannot see. Every
/// connection gets `readTimeoutMs` as SO_RCVTIMEO/SO_SNDTIMEO, so a peer that
/// sends half a request (or stops reading) frees its thread, and a thread
/// reading a request's params counts as busy, not idle, so the pool grows
/// past slow peers (two such peers stalled a whole process).
///
/// Saturation: at most `maxThreads` requests run at once. The pool may hold
/// one thread more, the reserve: a request accepted while `maxThreads` are
/// running is served with `exchange.overloaded` set — the gateway answers
/// `/health` as usual and everything else with a quick 503 + Retry-After —
/// and its connection is closed, so the reserve is free again at once.
/// Monitors see the process alive and clients a clear answer instead of a
/// wait behind thousands of streams or nginx's 502.
///
/// Shutdown: `stop()` sets the flag and interrupts every thread that is not
/// serving a request with SIGUSR1 (installed without SA_RESTART; requests
/// are initialised with FCGI_FAIL_ACCEPT_ON_INTR), so threads in accept()
/// return and idle kept connections are closed (nginx drops a closed idle
/// connection from its cache); threads serving a request finish it first.
public final class WorkerPool: @unchecked Sendable {
    public typealias Handler = (FastCGIExchange) -> Void

    private let fd: Int32
    private let minThreads: Int
    private let maxThreads: Int
    private let stackBytes: Int
    private let readTimeoutMs: Int
    private let handler: Handler
    // Counters read and written on every request: atomics, never a lock (a
    // preempted lock holder stalls every thread of the process).
    private let total = Atomic<Int>(0)
    private let idle = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// When a thread last entered a listening accept() (not a kept connection).
    private let lastAcceptEntry = Atomic<UInt64>(0)
    /// The manager sleeps on this pipe (`PoolManagerRhythm`); a thread that
    /// takes the last place in accept() while it sleeps writes a byte.
    private var wakePipe: [Int32] = [-1, -1]
    private let managerAsleep = Atomic<Bool>(false)
    /// One entry per thread, added at thread start (rare, under the lock):
    /// whether it is inside accept(), so `stop` knows whom to interrupt.
    final class Worker: @unchecked Sendable {
        let thread: pthread_t
        let accepting = Atomic<Bool>(false)
        let alive = Atomic<Bool>(true)
        init(_ t: pthread_t) { thread = t }
    }
    private let lock = Lock()
    private var workers: [Worker] = []

    public init(fd: Int32, minThreads: Int, maxThreads: Int, stackBytes: Int = 512 << 10, readTimeoutMs: Int = 30_000,
                handler: @escaping Handler)
    {
        self.fd = fd
        self.minThreads = max(1, minThreads)
        self.maxThreads = max(self.minThreads, maxThreads)
        self.stackBytes = stackBytes
        self.readTimeoutMs = max(1, readTimeoutMs)
        self.handler = handler
    }

    public struct Stats { public let threads: Int; public let idle: Int; public let active: Int }
    public var stats: Stats {
        Stats(threads: total.load(ordering: .relaxed), idle: idle.load(ordering: .relaxed), active: active.load(ordering: .relaxed))
    }

    /// Called from the pool's manager thread about once a second (first
    /// at start); set before `start` (the process's `worker_threads`).
    public var everySecond: (() -> Void)?

    public func start() {
        FCGX_Init()
        if pipe(&wakePipe) == 0 {
            for fd in wakePipe {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        } else {
            wakePipe = [-1, -1] // the manager then ticks throughout, as it always could
        }
        for _ in 0..<minThreads { spawn() }
        startManager()
    }

    /// Grows the pool for long requests; see the type's comment.
    private func startManager() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, 256 << 10)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_create(&tid, &attr, { arg in
            let pool = Unmanaged<WorkerPool>.fromOpaque(arg!).takeRetainedValue()
            var rhythm = PoolManagerRhythm()
            var nextSecond: UInt64 = 0
            while !pool.stopping.load(ordering: .relaxed) {
                let now = Clock.monotonicNanos()
                if now >= nextSecond {
                    pool.everySecond?()
                    nextSecond = now &+ 1_000_000_000
                }
                switch rhythm.next(idle: pool.idle.load(ordering: .relaxed)) {
                case .tick:
                    usleep(2_000)
                    pool.growIfSaturated(now: Clock.monotonicNanos())
                case .sleep:
                    if pool.sleepUntilWoken(milliseconds: Int32((nextSecond &- min(nextSecond, Clock.monotonicNanos())) / 1_000_000) + 1) {
                        rhythm.woken()
                    }
                }
            }
            return nil
        }, box)
        pthread_attr_destroy(&attr)
    }

    /// Sleeps while a thread waits in accept(), at most `milliseconds`;
    /// true when a thread woke it. The flag and `idle` are both read and
    /// written sequentially consistent, so either the thread taking the
    /// last place sees the manager asleep and writes, or the manager sees
    /// no thread waiting and does not sleep.
    private func sleepUntilWoken(milliseconds: Int32) -> Bool {
        guard wakePipe[0] >= 0 else { usleep(2_000); return true }
        managerAsleep.store(true, ordering: .sequentiallyConsistent)
        if idle.load(ordering: .sequentiallyConsistent) > 0 {
            var p = pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, max(1, milliseconds))
        }
        managerAsleep.store(false, ordering: .sequentiallyConsistent)
        var buf = [UInt8](repeating: 0, count: 64)
        var woken = false
        while read(wakePipe[0], &buf, buf.count) > 0 { woken = true }
        return woken || idle.load(ordering: .relaxed) == 0
    }

    /// A thread left accept() with a connection: if it was the last one
    /// there and the manager sleeps, wake it (growth may be needed now).
    private func leftAccept() {
        if idle.subtract(1, ordering: .sequentiallyConsistent).newValue == 0,
           managerAsleep.load(ordering: .sequentiallyConsistent)
        {
            var byte: UInt8 = 1
            _ = write(wakePipe[1], &byte, 1)
        }
    }

    /// The rule is `PoolGrowth` (KimiCore, unit-tested); `spawn` still
    /// claims each place below the maximum atomically.
    func growIfSaturated(now: UInt64) {
        let n = PoolGrowth.threadsToStart(idle: idle.load(ordering: .relaxed), threads: total.load(ordering: .relaxed),
                                          maxThreads: maxThreads, nanosSinceLastAcceptEntry: now &- lastAcceptEntry.load(ordering: .relaxed))
        for _ in 0..<n { spawn() }
    }

    private func spawn() {
        // Claim a place below the maximum without a lock.
        var n = total.load(ordering: .relaxed)
        while true {
            guard !stopping.load(ordering: .relaxed), n < maxThreads + 1 else { return } // + the reserve
            let (done, seen) = total.compareExchange(expected: n, desired: n + 1, ordering: .relaxed)
            if done { break }
            n = seen
        }
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
            total.subtract(1, ordering: .relaxed)
            Log.error("cannot start a worker thread: \(String(cString: strerror(rc))) (\(stats.threads) running)")
        }
    }

    private func loop() {
        var request = FCGX_Request()
        // No listening socket for libfcgi: the pool accepts (see the type's comment).
        FCGX_InitRequest(&request, -1, FCGI_FAIL_ACCEPT_ON_INTR)
        let me = Worker(pthread_self())
        lock.withLock { workers.append(me) }
        var failures = 0
        while !stopping.load(ordering: .acquiring) {
            if request.ipcFd >= 0 {
                // On a kept connection (fastcgi_keep_conn) wait here for its next
                // request, so the pool knows this thread is not free for new
                // connections; when nginx closes it, close it ourselves.
                me.accepting.store(true, ordering: .sequentiallyConsistent)
                let next = stopping.load(ordering: .sequentiallyConsistent) ? .stop : waitOnKeptConnection(request.ipcFd)
                me.accepting.store(false, ordering: .sequentiallyConsistent)
                switch next {
                case .request: break
                case .closed, .stop: FCGX_Free(&request, 1); continue
                case .interrupted: continue
                }
            } else {
                idle.add(1, ordering: .relaxed)
                lastAcceptEntry.store(Clock.monotonicNanos(), ordering: .relaxed)
                me.accepting.store(true, ordering: .sequentiallyConsistent)
                // A stop that came between the loop check and here is seen now,
                // or its repeated SIGUSR1 interrupts the accept below.
                if stopping.load(ordering: .sequentiallyConsistent) {
                    me.accepting.store(false, ordering: .relaxed)
                    idle.subtract(1, ordering: .relaxed)
                    break
                }
                let conn = kimi_accept_cloexec(fd)
                let acceptErrno = errno
                me.accepting.store(false, ordering: .sequentiallyConsistent)
                leftAccept()
                if conn < 0 {
                    if stopping.load(ordering: .acquiring) { break }
                    // EINTR from a stray signal, or a transient error (EMFILE, ECONNABORTED).
                    if acceptErrno != EINTR {
                        failures += 1
                        if failures > 3 { usleep(10_000) }
                    }
                    continue
                }
                failures = 0
                Self.setTimeouts(conn, ms: readTimeoutMs)
                request.ipcFd = conn
                // So the FCGX_Finish_r at the top of FCGX_Accept_r keeps this
                // fd; the BEGIN_REQUEST record then sets the real value.
                request.keepConnection = 1
            }
            // Reads BEGIN_REQUEST and the params under the read timeout. On a
            // broken or silent peer libfcgi closes the connection and, with
            // no listening socket, returns an error here.
            guard FCGX_Accept_r(&request) >= 0 else {
                if request.ipcFd >= 0 { FCGX_Free(&request, 1) }
                continue
            }
            let running = active.add(1, ordering: .relaxed).newValue
            let keep = withUnsafeMutablePointer(to: &request) { req in
                let exchange = FastCGIExchange(request: req)
                exchange.overloaded = running > maxThreads
                handler(exchange)
                // The reserve stays free; a kept connection starts its next
                // request clean (`readToEndOfInput`) or is closed.
                return req.pointee.keepConnection != 0 && running <= maxThreads && !exchange.closeConnection
                    && exchange.readToEndOfInput()
            }
            if !keep { request.keepConnection = 0 }
            FCGX_Finish_r(&request)
            active.subtract(1, ordering: .relaxed)
        }
        FCGX_Free(&request, 1)
        me.alive.store(false, ordering: .relaxed)
        total.subtract(1, ordering: .relaxed)
        // Parked, not returned: the loop only ends when the process is about
        // to exit, and `stop` may still pthread_kill this thread, which is
        // undefined for a detached thread that has already ended.
        while true { pause() }
    }

    /// SO_RCVTIMEO and SO_SNDTIMEO: a peer silent (or not reading) for this
    /// long fails the read or write, which libfcgi reports as an error.
    static func setTimeouts(_ fd: Int32, ms: Int) {
        var tv = timeval(tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000)
        let size = socklen_t(MemoryLayout<timeval>.size)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, size)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, size)
    }

    enum KeptConnection { case request, closed, interrupted, stop }

    /// Blocks until the kept connection has the next request, or is closed:
    /// one blocking peek (the byte stays for libfcgi), interruptible by SIGUSR1.
    private func waitOnKeptConnection(_ fd: Int32) -> KeptConnection {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK))
        if stopping.load(ordering: .acquiring) { return .stop }
        if n > 0 { return .request }
        // EAGAIN: the read timeout passed with the connection idle; nginx
        // keeps idle connections as long as it likes, so wait on.
        if n < 0, errno == EINTR || errno == EAGAIN { return .interrupted }
        return .closed // EOF or error: nginx let the connection go
    }

    /// Stops accepting and waits for in-flight requests up to `drainNanos`.
    /// Returns the number of requests still running when it gave up.
    public func stop(drainNanos: UInt64) -> Int {
        stopping.store(true, ordering: .sequentiallyConsistent)
        FCGX_ShutdownPending()
        let deadline = Clock.monotonicNanos() &+ drainNanos
        while true {
            let list = lock.withLock { workers }
            // Re-sent until every accepting thread has left accept(): a thread
            // that was between its flag check and accept() missed the first.
            for w in list where w.alive.load(ordering: .relaxed) && w.accepting.load(ordering: .sequentiallyConsistent) {
                pthread_kill(w.thread, SIGUSR1)
            }
            let running = active.load(ordering: .relaxed)
            if total.load(ordering: .relaxed) == 0 || running == 0 && !list.contains(where: { $0.alive.load(ordering: .relaxed) && $0.accepting.load(ordering: .relaxed) }) {
                return 0
            }
            if Clock.monotonicNanos() >= deadline { return running }
            usleep(20_000)
        }
    }
}
