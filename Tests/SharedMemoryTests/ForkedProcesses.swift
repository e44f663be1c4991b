import Glibc
@testable import KimiCore

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
    ///
    /// The test runner is multi-threaded, and a forked child has only the
    /// forking thread: a runtime lock another thread held at fork time (seen:
    /// generic metadata being instantiated by a parallel test) is held
    /// forever in the child. So the caller runs `body`'s code paths once in
    /// the parent first (`warmUp`), and each child gets a 20 s alarm: a hang
    /// is a failure with a reason, never a stuck run. Tests in other suites
    /// run in parallel and fork too: from creating the start gate to
    /// releasing it, one caller at a time, or their children inherit each
    /// other's gate and none sees it close.
    static func together(_ count: Int, warmUp: () -> Void, _ body: @escaping () -> Int32) -> [Int32] {
        warmUp()
        let pids = forkLock.withLock { forkAndRelease(count, body) }
        return pids.map { pid in
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
        }
    }

    private static let forkLock = Lock()

    private static func forkAndRelease(_ count: Int, _ body: @escaping () -> Int32) -> [pid_t] {
        var gate: [Int32] = [0, 0]
        precondition(pipe(&gate) == 0)
        var pids: [pid_t] = []
        for _ in 0..<count {
            let pid = fork()
            if pid == 0 {
                alarm(20)
                close(gate[1])
                var b: UInt8 = 0
                _ = read(gate[0], &b, 1)
                _exit(body())
            }
            pids.append(pid)
        }
        close(gate[0])
        close(gate[1])
        return pids
    }
}
