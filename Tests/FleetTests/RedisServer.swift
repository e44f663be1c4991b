import Glibc

/// A real `redis-server` (Debian's package) on a free loopback port, for
/// one test: started with no persistence, stopped (SIGKILL) by `stop`.
final class RedisServer {
    let port: Int
    private(set) var pid: pid_t = 0
    let password: String?

    init(password: String? = nil) throws {
        port = Self.freePort()
        self.password = password
        try start()
    }

    /// Starts (again) on `port`. A restart can find the port briefly taken
    /// (the kernel may hand a just-freed port to an outgoing connection as
    /// its local port): redis-server then exits, and is started again.
    func start() throws {
        for _ in 0..<20 {
            if try spawnAndWait() { return }
            usleep(100_000)
        }
        throw Failure(description: "redis-server did not listen on \(port)")
    }

    private func spawnAndWait() throws -> Bool {
        var args = ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--loglevel", "warning", "--logfile", ""]
        if let password { args += ["--requirepass", password] }
        var cargs = args.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, "redis-server", &actions, nil, &cargs, environ)
        guard rc == 0 else { throw Failure(description: "redis-server cannot start (errno \(rc)): install Debian's redis-server") }
        pid = child
        for _ in 0..<500 {
            if Self.accepts(port) { return true }
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                pid = 0
                return false // it exited: the port was taken
            }
            usleep(10_000)
        }
        return false
    }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    func pause() { kill(pid, SIGSTOP) }
    func resume() { kill(pid, SIGCONT) }

    deinit { stop() }

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}
