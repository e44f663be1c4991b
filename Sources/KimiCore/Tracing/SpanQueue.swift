/// A process's spans waiting for export, and when to send them: the
/// OpenTelemetry SDK's batch span processor (SDK spec, "Batching
/// processor") as a value the exporter thread drives under its lock. An
/// item is what one request left (`FinishedTrace`: its server span and a
/// client span per attempt), counted by its spans.
///
/// - `offer` never blocks and never holds more than `capacity` spans: an
///   item that does not fit is dropped and its spans counted (a slow or
///   dead collector costs requests nothing but their spans).
/// - A batch goes when `batchSize` spans wait, when the oldest has waited
///   `delayNanos`, or at once while draining (shutdown).
///
/// Inlinable, so the exporter's module specializes it for its items: called
/// generically, every item was copied through value witnesses on its way
/// in and out (~5,000 instructions a request, callgrind, bench 2f).
public struct SpanQueue<Item: Sendable>: Sendable {
    /// The waiting items, and each one's span count at the same index.
    @usableFromInline var items: [Item] = []
    @usableFromInline var spanCounts: [Int] = []
    /// Spans waiting.
    @inlinable public var count: Int { spanTotal }
    @usableFromInline var spanTotal = 0
    /// When the oldest waiting item came (monotonic ns).
    @usableFromInline var oldest: UInt64?

    public init() {}

    @inlinable public var isEmpty: Bool { items.isEmpty }

    /// Adds `item` if its `spans` fit; returns how many spans were dropped.
    @inlinable public mutating func offer(_ item: Item, spans: Int, capacity: Int, now: UInt64) -> Int {
        guard spanTotal + spans <= capacity else { return spans }
        if items.isEmpty { oldest = now }
        items.append(item)
        spanCounts.append(spans)
        spanTotal += spans
        return 0
    }

    /// Whether a waiting exporter should wake now (a full batch waits).
    @inlinable public func batchReady(batchSize: Int) -> Bool { count >= batchSize }

    public enum Next {
        /// Items of at most `batchSize` spans (or one item, if it alone has more).
        case send([Item])
        /// Nothing to send before this time (monotonic ns); nil: until an item comes.
        case wait(until: UInt64?)
    }

    @inlinable public mutating func next(now: UInt64, batchSize: Int, delayNanos: UInt64, draining: Bool) -> Next {
        guard let since = oldest, !items.isEmpty else { return .wait(until: nil) }
        guard count >= batchSize || draining || now &- since >= delayNanos else { return .wait(until: since &+ delayNanos) }
        var n = 0, spans = 0
        while n < items.count, n == 0 || spans + spanCounts[n] <= batchSize {
            spans += spanCounts[n]
            n += 1
        }
        spanTotal -= spans
        let batch: [Item]
        if n == items.count {
            // The usual case: everything waiting goes, moved out whole.
            batch = items
            items = []
            spanCounts.removeAll(keepingCapacity: true)
        } else {
            batch = Array(items[..<n])
            items.removeFirst(n)
            spanCounts.removeFirst(n)
        }
        // What stays waited at least as long: it goes on the next call.
        if items.isEmpty { oldest = nil }
        return .send(batch)
    }
}
