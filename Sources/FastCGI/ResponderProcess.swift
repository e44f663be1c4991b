import Glibc
import KimiCore

/// What every FastCGI responder process of this project does around its
/// handler, written once for `serve` and `simulate`: the log file, the
/// signals, the listening socket, and the end (stop on SIGTERM/SIGINT with
/// a drain, reopen the log on SIGHUP, remove the socket it created).
public struct ResponderProcess {
    /// `--socket`: a unix socket path or HOST:PORT; nil means fd 0 (spawn-fcgi, systemd).
    public var socket: String?
    /// `--socket-group`: the web server's group may connect to the unix socket.
    public var socketGroup: String?
    /// `--log-file`: stderr reopened on this file (O_APPEND), again on SIGHUP.
    public var logFile: String?

    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(socket: String?, socketGroup: String?, logFile: String?) {
        self.socket = socket
        self.socketGroup = socketGroup
        self.logFile = logFile
    }

    /// Where it listens, for the start-up log line.
    public var listeningOn: String { socket ?? "fd 0" }

    /// Log file first (so later errors land in it), and signals blocked
    /// before any thread exists.
    public func prepare() throws(SetupError) {
        try redirectLog()
        Signals.install()
    }

    /// The listening socket: `socket` opened, or the inherited fd 0.
    public func listen() throws(SetupError) -> Int32 {
        if let socket {
            do { return try Listener.open(socket, group: socketGroup) } catch { throw SetupError(description: "\(error)") }
        }
        guard Listener.inheritedSocketAvailable() else {
            throw SetupError(description: "no --socket given and fd 0 is not a listening socket (start under spawn-fcgi, or pass --socket PATH)")
        }
        return 0
    }

    /// spawn-fcgi points a forked child's stderr at /dev/null: `--log-file`
    /// reopens it on a file (O_APPEND, so lines from several processes do
    /// not overwrite each other). dup2 replaces fd 2 atomically: a line
    /// being written goes to the old file or the new one, never nowhere.
    func redirectLog() throws(SetupError) {
        guard let logFile else { return }
        let fd = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SetupError(description: "cannot open log file \(logFile): \(String(cString: strerror(errno)))") }
        dup2(fd, 2)
        close(fd)
    }

    /// SIGHUP: reopen `--log-file` (after logrotate renamed it); without
    /// one, nothing to do (stderr belongs to whoever started us).
    public func reopenLog() {
        guard let logFile else { return }
        do {
            try redirectLog()
            Log.info("log file reopened (\(logFile))")
        } catch {
            Log.error("SIGHUP: \(error); still writing to the previous log file")
        }
    }

    /// Blocks until SIGTERM or SIGINT (reopening the log on SIGHUP), then
    /// stops the pool, waiting up to `drainNanos` for requests in flight.
    /// Returns the signal and how many requests were cut off.
    public func runUntilTerminated(_ pool: WorkerPool, drainNanos: () -> UInt64) -> (signal: Int32, cutOff: Int) {
        let sig = Signals.waitForTermination { reopenLog() }
        let drain = drainNanos()
        Log.info("received \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): no new requests, draining \(pool.stats.active) in flight (up to \(drain / 1_000_000) ms)")
        let left = pool.stop(drainNanos: drain)
        LogBuffer.shared.flush() // the access lines of the requests drained, before the line that says so
        if left > 0 { Log.warn("drain timeout: \(left) request(s) cut off") } else { Log.info("drained, exiting") }
        return (sig, left)
    }

    /// Removes the unix socket this process created (not one it inherited).
    public func removeSocket() {
        if let socket, Listener.isUnixSocket(socket) { unlink(socket) }
    }
}
