/// The worker pool's growth rule (`WorkerPool`'s manager applies it every
/// 2 ms while it can be needed, `PoolManagerRhythm`), as a pure function.
///
/// Grow when no thread is waiting in a listening accept() and none has
/// gone back to one for `quietNanos`: new connections would wait in the
/// kernel's queue behind long requests (streams) and kept connections.
/// Then add a quarter of the threads there are (at least one, at most
/// `maxStep`), never past
/// `maxThreads` plus the one reserve thread. Short requests alone never
/// trigger growth: their threads are back in accept() within microseconds,
/// and more threads sleeping in accept() only add wake-ups (measured 2.5
/// context switches a request with 48 threads, 1.05 with a few).
public enum PoolGrowth {
    public static let quietNanos: UInt64 = 2_000_000
    /// The most threads one tick adds (8,000 a second at the 2 ms tick).
    /// Growth in proportion to a pool's size fed on itself across the
    /// processes sharing the listening socket: the kernel hands a new
    /// connection to whichever thread has waited longest in accept(), so a
    /// process that grew by a quarter took a larger share of the next
    /// connections, saturated first and grew again (one of 4 processes took
    /// 4,101 of 10,000 held streams and turned 12 away at its maximum).
    public static let maxStep = 16

    /// How many threads to start now.
    public static func threadsToStart(idle: Int, threads: Int, maxThreads: Int, nanosSinceLastAcceptEntry: UInt64,
                                      quietNanos: UInt64 = quietNanos) -> Int
    {
        guard idle == 0, nanosSinceLastAcceptEntry > quietNanos else { return 0 }
        let room = maxThreads + 1 - threads // + the reserve
        return max(0, min(room, max(1, min(threads / 4, maxStep))))
    }
}

/// When the pool's manager ticks (every `PoolGrowth` 2 ms) and when it
/// sleeps. Growth needs every thread out of accept(), so while some wait
/// there the ticks find nothing to do: after `quietTicks` ticks in a row
/// with a thread waiting in accept() (1 s), the manager sleeps until a
/// thread takes the last waiting place (it is woken) or until its
/// once-a-second work is due. Ticking at an idle gateway was 500 wake-ups
/// a second a process, each ~10 µs of CPU on a 2-vCPU VM (perf: a quarter
/// of 4 processes' CPU with 1,000 streams open); a pool under load keeps
/// ticking, so waking the manager is rare.
public struct PoolManagerRhythm: Equatable, Sendable {
    public static let quietTicks = 500
    public enum Next: Equatable, Sendable { case tick, sleep }
    /// Ticks in a row that saw a thread waiting in accept().
    public private(set) var quiet = 0

    public init() {}

    /// After a tick (or a sleep that ran out): `idle` threads wait in accept().
    public mutating func next(idle: Int) -> Next {
        quiet = idle > 0 ? min(quiet + 1, Self.quietTicks) : 0
        return quiet >= Self.quietTicks ? .sleep : .tick
    }

    /// A thread took the last place in accept() while the manager slept.
    public mutating func woken() { quiet = 0 }
}
