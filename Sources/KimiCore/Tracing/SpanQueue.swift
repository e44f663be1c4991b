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
public struct SpanQueue<Item: Sendable>: Sendable {
    public private(set) var items: [(item: Item, spans: Int)] = []
    /// Spans waiting.
    public private(set) var count = 0
    /// When the oldest waiting item came (monotonic ns).
    private var oldest: UInt64?

    public init() {}

    public var isEmpty: Bool { items.isEmpty }

    /// Adds `item` if its `spans` fit; returns how many spans were dropped.
    public mutating func offer(_ item: Item, spans: Int, capacity: Int, now: UInt64) -> Int {
        guard count + spans <= capacity else { return spans }
        if items.isEmpty { oldest = now }
        items.append((item, spans))
        count += spans
        return 0
    }

    /// Whether a waiting exporter should wake now (a full batch waits).
    public func batchReady(batchSize: Int) -> Bool { count >= batchSize }

    public enum Next {
        /// Items of at most `batchSize` spans (or one item, if it alone has more).
        case send([Item])
        /// Nothing to send before this time (monotonic ns); nil: until an item comes.
        case wait(until: UInt64?)
    }

    public mutating func next(now: UInt64, batchSize: Int, delayNanos: UInt64, draining: Bool) -> Next {
        guard let since = oldest, !items.isEmpty else { return .wait(until: nil) }
        guard count >= batchSize || draining || now &- since >= delayNanos else { return .wait(until: since &+ delayNanos) }
        var n = 0, spans = 0
        while n < items.count, n == 0 || spans + items[n].spans <= batchSize {
            spans += items[n].spans
            n += 1
        }
        let batch = items.prefix(n).map(\.item)
        items.removeFirst(n)
        count -= spans
        // What stays waited at least as long: it goes on the next call.
        if items.isEmpty { oldest = nil }
        return .send(batch)
    }
}
