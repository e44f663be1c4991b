#if canImport(Glibc)
import Glibc
#endif

/// Access-log lines are handed to a writer thread instead of written by the
/// request thread. Every thread of every worker process writes
/// to one open file description (stderr on `--log-file`, O_APPEND), and
/// Linux serialises writes to a regular file on its position lock
/// (`fdget_pos`) and inode lock: when one write waited on the disk (page
/// writeback behind the ledger's SQLite fsyncs), every request thread queued
/// behind it — 1,870 of 1,950 samples of blocked gateway threads at
/// `wrk -c32` were there (`/proc/<tid>/stack`), and since the access line is
/// written before `FCGX_Finish_r`, each such wait was the client's.
///
/// Contract:
/// - `append` copies the line into a per-process buffer under a lock held
///   for that copy only, and wakes the writer if it was idle. It never
///   touches the disk unless the buffer is full (`capacity`): that line is
///   then written by its own thread, as before, so no line is ever dropped
///   and memory stays bounded.
/// - The writer writes what has accumulated in one write(2) to a regular
///   file (atomic between processes with O_APPEND), or cut at line
///   boundaries into writes of at most PIPE_BUF to a pipe or socket (a
///   journald or container stderr), so lines never interleave. It then
///   rests `batchMicros` so lines arriving meanwhile share the next write.
/// - `flush` returns once every line appended before it is written (or
///   after `timeoutMs`, if the disk hangs); the process calls it before it
///   exits, and at exit(3). A SIGKILLed process loses at most the lines of
///   its last `batchMicros`.
/// - Fork-safe: the writer thread is started lazily by the process that
///   first appends, and again by a child that inherited a parent's buffer.
public final class LogBuffer: @unchecked Sendable {
    public static let shared = LogBuffer(fd: 2)

    private let fd: Int32
    private let capacity: Int
    private let batchMicros: UInt32
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let written: UnsafeMutablePointer<pthread_cond_t>
    private var pending: [UInt8] = []
    private var appended: UInt64 = 0
    private var writtenUpTo: UInt64 = 0
    private var writerPid: pid_t = 0
    /// The fork generation the writer was started in (`ForkGeneration`):
    /// compared on every append instead of `getpid()`, a syscall per
    /// access line (glibc does not cache the pid).
    private var writerGeneration: UInt64 = .max
    private var writerIdle = false
    /// Lines written by their own thread because the buffer was full.
    public private(set) var overflowed: UInt64 = 0

    public init(fd: Int32, capacity: Int = 4 << 20, batchMicros: UInt32 = 2_000) {
        self.fd = fd
        self.capacity = capacity
        self.batchMicros = batchMicros
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        written = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(written, &attr)
        pthread_condattr_destroy(&attr)
    }

    /// One line; a newline is added.
    public func append(line: [UInt8]) {
        line.withUnsafeBytes { append(line: $0) }
    }

    public func append(line: UnsafeRawBufferPointer) {
        pthread_mutex_lock(mutex)
        if writerGeneration != ForkGeneration.current { startWriter() }
        guard pending.count + line.count + 1 <= capacity else {
            overflowed &+= 1
            pthread_mutex_unlock(mutex)
            var b = [UInt8](line)
            b.append(0x0A)
            b.withUnsafeBytes { _ = FileIO.writeAll(fd, $0) }
            return
        }
        pending.append(contentsOf: line)
        pending.append(0x0A)
        appended &+= 1
        let signal = writerIdle
        writerIdle = false
        pthread_mutex_unlock(mutex)
        if signal { pthread_cond_signal(wake) }
    }

    /// Waits until every line appended before this call is written, up to
    /// `timeoutMs`; false on timeout.
    @discardableResult
    public func flush(timeoutMs: Int = 2_000) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard writerPid == getpid() else { return true } // nothing appended in this process
        let target = appended
        if writerIdle { writerIdle = false; pthread_cond_signal(wake) }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += timeoutMs / 1000
        deadline.tv_nsec += (timeoutMs % 1000) * 1_000_000
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        while writtenUpTo < target {
            if pthread_cond_timedwait(written, mutex, &deadline) == ETIMEDOUT { return writtenUpTo >= target }
        }
        return true
    }

    /// Under the mutex.
    private func startWriter() {
        let first = writerPid == 0
        writerPid = getpid()
        writerGeneration = ForkGeneration.current
        writerIdle = false
        // A forked child's inherited lines are its parent's to write.
        pending.removeAll(keepingCapacity: false)
        writtenUpTo = appended
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, 128 << 10)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&tid, &attr, { arg in
            Unmanaged<LogBuffer>.fromOpaque(arg!).takeRetainedValue().writerLoop()
            return nil
        }, box)
        pthread_attr_destroy(&attr)
        if rc != 0 {
            Unmanaged<LogBuffer>.fromOpaque(box).release()
            writerPid = 0
            return
        }
        if first && self === LogBuffer.shared { atexit { LogBuffer.shared.flush(timeoutMs: 500) } }
    }

    private func writerLoop() {
        let me = getpid()
        var batch: [UInt8] = []
        while true {
            pthread_mutex_lock(mutex)
            while pending.isEmpty {
                guard writerPid == me else { pthread_mutex_unlock(mutex); return }
                writerIdle = true
                pthread_cond_wait(wake, mutex)
            }
            swap(&batch, &pending)
            let upTo = appended
            pthread_mutex_unlock(mutex)
            write(batch)
            // Keep a working buffer's capacity, not a burst's.
            if batch.capacity > 256 << 10 { batch = [] } else { batch.removeAll(keepingCapacity: true) }
            pthread_mutex_lock(mutex)
            writtenUpTo = upTo
            pthread_mutex_unlock(mutex)
            pthread_cond_broadcast(written)
            usleep(batchMicros)
        }
    }

    private func write(_ bytes: [UInt8]) {
        var st = stat()
        let regular = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        bytes.withUnsafeBytes { all in
            if regular { _ = FileIO.writeAll(fd, all); return }
            for r in Self.atomicPieces(all, limit: Int(PIPE_BUF)) {
                _ = FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: all[r]))
            }
        }
    }

    /// `bytes` (whole lines) cut at line ends into pieces of at most `limit`
    /// bytes where it can be (a longer line is a piece of its own): writes of
    /// up to PIPE_BUF to a pipe are atomic (POSIX), so no line interleaves
    /// with another process's.
    public static func atomicPieces(_ bytes: UnsafeRawBufferPointer, limit: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0
        var lastEnd = 0 // just past the last newline seen in this piece
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x0A {
                let end = i + 1
                if end - start > limit, lastEnd > start {
                    out.append(start..<lastEnd)
                    start = lastEnd
                }
                if end - start > limit { // one line longer than the limit
                    out.append(start..<end)
                    start = end
                }
                lastEnd = end
            }
            i += 1
        }
        if lastEnd > start { out.append(start..<lastEnd) }
        if bytes.count > max(start, lastEnd) { out.append(max(start, lastEnd)..<bytes.count) }
        return out
    }
}

/// Which process this is, without a syscall: 0 in the process that
/// started, one more in each child forked after the first call
/// (`pthread_atfork`; the child runs the handler alone, before any of its
/// threads exist).
public enum ForkGeneration {
    nonisolated(unsafe) private static var value: UInt64 = 0
    private static let registered: Void = {
        pthread_atfork(nil, nil) { ForkGeneration.value &+= 1 }
    }()

    public static var current: UInt64 {
        _ = registered
        return value
    }
}
