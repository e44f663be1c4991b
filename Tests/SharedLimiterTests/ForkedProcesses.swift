import Glibc

/// Helpers for tests that need several real processes on one shared file.
enum ForkedProcesses {
    /// A fresh private directory under /tmp.
    static func temporaryDirectory(_ prefix: String) -> String {
        var t = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&t)!)
    }

    /// Forks `count` children that all start `body` at the same instant (they
    /// block on a pipe until the parent closes it) and exit with its result
    /// (0...255); returns the exit codes, or -1 for a child that died of a signal.
    static func together(_ count: Int, _ body: @escaping () -> Int32) -> [Int32] {
        var gate: [Int32] = [0, 0]
        precondition(pipe(&gate) == 0)
        var pids: [pid_t] = []
        for _ in 0..<count {
            let pid = fork()
            if pid == 0 {
                close(gate[1])
                var b: UInt8 = 0
                _ = read(gate[0], &b, 1)
                _exit(body())
            }
            pids.append(pid)
        }
        close(gate[0])
        close(gate[1])
        return pids.map { pid in
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
        }
    }
}
