import CFastCGI
import Glibc
import KimiCore

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

    /// glibc raises its mmap threshold after a large block is freed, so later
    /// large buffers come from per-thread arenas and stay resident after use
    /// (measured: 600 MB-1 GB kept after a burst of large upstream answers).
    /// A fixed threshold keeps blocks over `bytes` in mmap, returned on free.
    public static func returnLargeBuffersToTheSystem(over bytes: Int32 = 256 << 10) { _ = kimi_fixed_mmap_threshold(bytes) }

    /// The kernel sends this process SIGTERM when its parent dies (call in
    /// a forked worker; the parent must be single-threaded).
    public static func terminateWithParent() { _ = kimi_set_parent_death_signal(SIGTERM) }

    /// Blocks the calling thread until SIGTERM or SIGINT; on SIGHUP calls
    /// `onHangup` (reopen the log file, for logrotate) and goes on waiting.
    public static func waitForTermination(onHangup: () -> Void = {}) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        while true {
            var sig: Int32 = 0
            if sigwait(&set, &sig) == 0 {
                if sig == SIGHUP { onHangup(); continue }
                return sig
            }
        }
    }
}
