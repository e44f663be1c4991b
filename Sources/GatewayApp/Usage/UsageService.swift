import Glibc
import KimiCore
import Storage

/// The process's side of the usage ledger: its journal, the
/// ledger, the thread that moves one into the other, and the book of every
/// key's usage today and this month that budgets and `GET /api/usage` read
/// (`UsageBook`: memory only, no SQLite on the request path).
public final class UsageService: @unchecked Sendable {
    public let ledger: UsageLedger
    public let journal: UsageJournal
    private let lock = Lock()
    private let drainLock = Lock()
    private var book = UsageBook(now: Clock.wallMicros() / 1000)
    private let log = IntervalGate(intervalNanos: 10_000_000_000)

    /// Opens the ledger in `database` (migrating it) and this process's
    /// journal in `journal/` beside it.
    public init(database: SQLiteDatabase, path: String) throws {
        ledger = try UsageLedger(database: database)
        journal = try UsageJournal(directory: SharedFiles.directory(of: path) + "/journal")
    }

    /// Appends the record to this process's journal (a copy into the
    /// mapping) and, for a key with a budget, counts it as pending: its next
    /// request must see it before any drain (`pending` takes a lock every
    /// request shares, so it is only for the keys that need it).
    func record(_ record: UsageRecord, pending: Bool, ticket: Int? = nil) {
        guard journal.append(record, ticket: ticket) else {
            if log.tryEnter() { Log.error("usage: cannot append to \(journal.path): \(String(cString: strerror(errno)))") }
            return
        }
        if pending { lock.withLock { book.addPending(record) } }
    }

    /// The request's provisional row, written at admission (see
    /// `InFlightSlots`): the ticket its final row clears.
    func begin(_ provisional: UsageRecord) -> Int? {
        let ticket = journal.begin(provisional)
        if ticket == nil, log.tryEnter() { Log.error("usage: no in-flight slot for a provisional row in \(journal.path)") }
        return ticket
    }

    /// What the key used today and this month, as this process knows it.
    func spent(fingerprint: String, nowMs: Int64) -> UsageBook.Spent {
        lock.withLock { book.spent(fingerprint, now: nowMs) }
    }

    /// Replays journals that dead processes left, loads the book, then
    /// every `intervalMs` moves this process's journal into the ledger and
    /// follows what every process added. A locked or missing database is
    /// retried; records wait in the journal. 100 ms: small batches, so the
    /// drain's bursts of CPU stay short on a busy machine (measured: at
    /// 250 ms the completion p99 rose).
    func start(intervalMs: Int) {
        adoptLeftovers(atStart: true)
        try? refreshBook()
        Thread.detached(stackBytes: 256 << 10) { [self] in
            // Below the request threads (nice 10: a tenth of one's share when
            // the cores are saturated, all of the idle time otherwise). At
            // nice 0 each drain's burst stood in line with requests and the
            // completion p99 doubled (bench scenario 2b); records wait in
            // the journal a little longer instead, which is what it is for.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10) // Linux: 0 is the calling thread
            // Journals of workers that died while this one runs are taken
            // every few seconds (a supervisor restarts a worker, but a
            // zombie or a worker that is not replaced would hold its rows
            // until the next start).
            let adoptEvery = max(1, Self.adoptIntervalMs / max(1, intervalMs))
            var round = 0
            while true {
                usleep(useconds_t(intervalMs) * 1000)
                do { try drainOnce() } catch {
                    if log.tryEnter() { Log.error("usage: ledger write failed (\(error)); records wait in \(journal.path)") }
                }
                round += 1
                if round % adoptEvery == 0 { adoptLeftovers(atStart: false) }
            }
        }
    }

    static let adoptIntervalMs = 5_000

    /// Stores the journals (and rows in flight) of processes that are gone.
    func adoptLeftovers(atStart: Bool) {
        do {
            let r = try journal.replayLeftovers(into: ledger)
            if r.journals > 0 {
                Log.info("usage: stored \(r.stored) record(s) from \(r.journals) journal(s) of processes that are gone"
                    + (r.skipped > 0 ? "; \(r.skipped) line(s) were not records and were skipped" : ""))
            }
        } catch {
            Log.error("usage: replaying leftover journals failed: \(error); retried \(atStart ? "by the drain thread" : "in a few seconds")")
        }
    }

    /// One drain: store the journal, follow the ledger, and only then stop
    /// counting the stored records as pending (so they never count zero times).
    /// One at a time (the drain thread and the admin report): two drains
    /// of the same bytes would take the same records off pending twice.
    func drainOnce() throws {
        try drainLock.withLock {
            let stored = try journal.drainRecords(into: ledger).ofKeys
            try refreshBook()
            if !stored.isEmpty { lock.withLock { for r in stored { book.removePending(r) } } }
        }
    }

    /// Rows added since the last look; the whole period again when a UTC day began.
    func refreshBook() throws {
        let nowMs = Clock.wallMicros() / 1000
        let (stale, seen) = lock.withLock { (book.isStale(now: nowMs), book.lastRowID) }
        if stale || seen == 0 {
            let last = try ledger.lastRowID()
            let day = UsagePeriod.day(containing: nowMs)
            let month = UsagePeriod.month(containing: nowMs)
            let dayTotals = try ledger.countsByKey(from: day.from, to: day.to, upTo: last)
            let monthTotals = try ledger.countsByKey(from: month.from, to: month.to, upTo: last)
            lock.withLock { book.reload(now: nowMs, lastRowID: last, day: dayTotals, month: monthTotals) }
            if last > 0 { return }
        }
        let (after, day, month) = lock.withLock { (book.lastRowID, book.day, book.month) }
        let last = try ledger.lastRowID()
        guard last > after else { return }
        let sums = try ledger.added(after: after, upTo: last, day: day, month: month)
        lock.withLock {
            // A reload in between (a new day) already counted these rows.
            if book.lastRowID == after { book.addStored(upTo: last, sums) }
        }
    }

    /// Stores what the journal holds now (at shutdown, after the drain),
    /// and the provisional rows of requests the stop cut short.
    public func flush() {
        do {
            try drainOnce()
            let cut = try journal.storeInFlight(into: ledger)
            if cut > 0 { Log.info("usage: \(cut) request(s) still in flight at the stop recorded as interrupted") }
            journal.closeIfEmpty()
        } catch {
            Log.error("usage: final ledger write failed (\(error)); records wait in \(journal.path) for the next start")
        }
    }
}

/// A detached pthread running a closure (no Foundation in these targets).
enum Thread {
    static func detached(stackBytes: Int, _ body: @escaping () -> Void) {
        final class Box {
            let run: () -> Void
            init(_ run: @escaping () -> Void) { self.run = run }
        }
        var tid = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, stackBytes)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_create(&tid, &attr, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(Box(body)).toOpaque())
        pthread_attr_destroy(&attr)
    }
}
