import Synchronization

/// Bytes of upstream answers one process holds at once, across all threads.
/// Lock-free: one atomic add per 256 KiB reserved.
public final class BufferBudget: Sendable {
    private let used = Atomic<Int>(0)
    private let limit: Atomic<Int>

    public init(limit: Int) { self.limit = Atomic(limit) }

    /// The limit follows `server.maxBufferedBytes` on reload.
    func setLimit(_ l: Int) { limit.store(l, ordering: .relaxed) }

    func reserve(_ n: Int) -> Bool {
        let now = used.add(n, ordering: .relaxed).newValue
        if now <= limit.load(ordering: .relaxed) { return true }
        used.subtract(n, ordering: .relaxed)
        return false
    }

    func release(_ n: Int) { if n > 0 { used.subtract(n, ordering: .relaxed) } }

    public var inUse: Int { used.load(ordering: .relaxed) }
    var limitBytes: Int { limit.load(ordering: .relaxed) }
}
