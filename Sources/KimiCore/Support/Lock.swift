#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex in a class (stable address), for the few pieces of state
/// shared between worker threads.
public final class Lock: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>
    public init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }
    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }
    @inline(__always) public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// A value behind a lock.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var value: Value
    public init(_ v: Value) { value = v }
    public func get() -> Value { lock.withLock { value } }
    public func set(_ v: Value) { lock.withLock { value = v } }
    @discardableResult public func update<T>(_ f: (inout Value) -> T) -> T { lock.withLock { f(&value) } }
}
