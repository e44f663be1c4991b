import Glibc

/// The CPU scheduling policy of a responder process's threads. Linux keeps
/// it per thread and a new thread inherits its creator's, so it is set on
/// the thread that starts all the others, before it starts any. Why batch:
/// `GatewayConfig.Server.batchScheduling`.
public enum SchedulingPolicy {
    /// <linux/sched.h>; glibc declares it only under _GNU_SOURCE.
    static let batch: Int32 = 3

    /// SCHED_BATCH (nice unchanged, no privilege needed) for the calling
    /// thread and every thread it starts from now on; nil when it is set,
    /// else the kernel's reason.
    public static func useBatch() -> String? {
        var param = sched_param(sched_priority: 0)
        guard sched_setscheduler(0, batch, &param) == 0 else { return String(cString: strerror(errno)) }
        return nil
    }

    /// The calling thread's policy is SCHED_BATCH.
    public static var isBatch: Bool { sched_getscheduler(0) == batch }
}
