import Synchronization

/// An atomic reference (not Combine's `@Published`: nothing is observed):
/// a value that many threads read on every request and one thread
/// replaces now and then (a reloaded config, a remapped file), read without
/// a lock: with hundreds of threads on two cores, a preempted lock holder
/// stalls every other thread (measured: p99 5 ms → 70 ms for /health).
///
/// Readers load the pointer atomically. A replaced value is kept alive for
/// `graceNanos` after its replacement before it is released, so a reader
/// that loaded it just before the swap can finish with it; readers only
/// hold a value for the length of one request step.
public final class AtomicReference<T: AnyObject>: @unchecked Sendable {
    private let bits: Atomic<UInt>
    private let lock = Lock()
    private var retired: [(value: T, at: UInt64)] = []
    private let graceNanos: UInt64

    public init(_ value: T, graceNanos: UInt64 = 60_000_000_000) {
        bits = Atomic(UInt(bitPattern: Unmanaged.passRetained(value).toOpaque()))
        self.graceNanos = graceNanos
    }

    deinit {
        if let p = UnsafeRawPointer(bitPattern: bits.load(ordering: .acquiring)) {
            Unmanaged<T>.fromOpaque(p).release()
        }
    }

    @inline(__always) public func load() -> T {
        Unmanaged<T>.fromOpaque(UnsafeRawPointer(bitPattern: bits.load(ordering: .acquiring))!).takeUnretainedValue()
    }

    public func store(_ value: T) {
        let new = UInt(bitPattern: Unmanaged.passRetained(value).toOpaque())
        let old = bits.exchange(new, ordering: .acquiringAndReleasing)
        let now = Clock.monotonicNanos()
        lock.withLock {
            retired.append((Unmanaged<T>.fromOpaque(UnsafeRawPointer(bitPattern: old)!).takeRetainedValue(), now))
            retired.removeAll { now &- $0.at > graceNanos }
        }
    }
}

/// "At most once per interval, by one thread": the first caller past the
/// interval wins a compare-and-swap and does the check; the others go on.
public final class IntervalGate: @unchecked Sendable {
    private let last: Atomic<UInt64>
    private let interval: UInt64

    public init(intervalNanos: UInt64) {
        interval = intervalNanos
        last = Atomic(Clock.monotonicNanos())
    }

    @inline(__always) public func tryEnter(now: UInt64 = Clock.monotonicNanos()) -> Bool {
        let seen = last.load(ordering: .relaxed)
        guard now &- seen >= interval else { return false }
        return last.compareExchange(expected: seen, desired: now, ordering: .relaxed).exchanged
    }
}
