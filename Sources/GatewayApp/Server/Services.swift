import Glibc
import KimiCore
import Storage
import Upstream

/// Long-lived collaborators of the pipeline, shared by all worker threads.
public final class Services: @unchecked Sendable {
    public let models = ModelsCache()
    public let limiter = MachineRateLimiter()
    /// Upstream answers buffered at once by this process.
    public let buffers: BufferBudget
    /// Who uploaded which file; nil when the database cannot be opened
    /// (`storageProblem` says why, and file routes answer 503).
    public let files: FileRegistry?
    public let storageProblem: String
    /// Extracted document texts (`/api/chat/document`); nil without a directory.
    public let documents: DocumentCache?
    /// The usage ledger and this process's journal (issue #12); nil
    /// without a database.
    public let ledger: UsageLedger?
    public let journal: UsageJournal?

    public init(maxBufferedBytes: Int = GatewayConfig().server.maxBufferedBytes, database: String? = nil,
                documents: GatewayConfig.Documents? = nil)
    {
        buffers = BufferBudget(limit: maxBufferedBytes)
        self.documents = documents.map { DocumentCache(directory: $0.cacheDir, maxBytes: $0.cacheBytes) }
        guard let database else {
            (files, ledger, journal) = (nil, nil, nil)
            storageProblem = "no database configured"
            return
        }
        do {
            guard SharedFiles.ensureParent(of: database) else { throw SQLiteDatabase.Failure(description: "cannot create the directory of \(database)") }
            let db = try SQLiteDatabase(path: database)
            let opened = (try FileRegistry(database: db), try UsageLedger(database: db),
                          try UsageJournal(directory: SharedFiles.directory(of: database) + "/journal"))
            (files, ledger, journal) = opened
            storageProblem = ""
        } catch {
            (files, ledger, journal) = (nil, nil, nil)
            storageProblem = "database \(database): \(error)"
            Log.error("storage: \(storageProblem); file routes will answer 503 and usage is not recorded")
        }
    }

    private let usageLog = IntervalGate(intervalNanos: 10_000_000_000)

    /// Appends the request's usage row to this process's journal (one
    /// write; SQLite is the drain thread's business).
    func recordUsage(_ capture: UsageCapture, ctx: RequestContext, status: Int, clientLeft: Bool, startNanos: UInt64) {
        guard let journal else { return }
        let now = Clock.monotonicNanos()
        let startMs = Int64(Clock.wallMicros() / 1000) - Int64((now &- startNanos) / 1_000_000)
        let client = ctx.apiKey.map { "key:" + $0.sha256.prefix(16) } ?? ctx.request.remoteAddr
        let record = capture.record(requestID: ctx.request.requestID, key: ctx.apiKey, client: client, route: ctx.request.path,
                                    status: status, clientLeft: clientLeft, startNanos: startNanos, endNanos: now, startUnixMs: startMs)
        if !journal.append(record), usageLog.tryEnter() {
            Log.error("usage: cannot append to \(journal.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Replays journals that dead processes left, then moves this process's
    /// journal into the ledger every `intervalMs` on a thread of its own. A
    /// locked or missing database is retried; records wait in the journal.
    /// 100 ms: small batches, so the drain's bursts of CPU stay short on
    /// a busy machine (measured: at 250 ms the completion p99 rose).
    public func startUsageDrain(intervalMs: Int = 100) {
        guard let journal, let ledger else { return }
        do {
            let replayed = try journal.replayLeftovers(into: ledger)
            if replayed > 0 { Log.info("usage: replayed \(replayed) record(s) from journals of processes that are gone") }
        } catch {
            Log.error("usage: replaying leftover journals failed: \(error); retried at the next start")
        }
        final class Drain {
            let run: () -> Void
            init(_ run: @escaping () -> Void) { self.run = run }
        }
        let drain = Drain { [usageLog] in
            while true {
                usleep(useconds_t(intervalMs) * 1000)
                do { try journal.drain(into: ledger) } catch {
                    if usageLog.tryEnter() { Log.error("usage: ledger write failed (\(error)); records wait in \(journal.path)") }
                }
            }
        }
        var tid = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setstacksize(&attr, 256 << 10)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_create(&tid, &attr, { arg in
            Unmanaged<Drain>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(drain).toOpaque())
        pthread_attr_destroy(&attr)
    }

    /// Stores what the journal holds now (at shutdown, after the drain).
    public func flushUsage() {
        guard let journal, let ledger else { return }
        do { try journal.drain(into: ledger) } catch { Log.error("usage: final ledger write failed (\(error)); records wait in \(journal.path)") }
    }

    func documentCache() throws -> DocumentCache {
        guard let documents else { throw GatewayError.storageUnavailable("The document cache is not configured") }
        return documents
    }

    /// The registry, or the 503 that says why there is none.
    func fileRegistry() throws -> FileRegistry {
        guard let files else { throw GatewayError.storageUnavailable("File storage is unavailable (\(storageProblem))") }
        return files
    }
}

extension Services {
    public static func make(config: GatewayConfig, cache: ConfigCache) -> Services {
        UpstreamClient.initialize()
        let services = Services(maxBufferedBytes: config.server.maxBufferedBytes, database: config.storage.database,
                                documents: config.documents)
        cache.onReload = { [buffers = services.buffers] in buffers.setLimit($0.server.maxBufferedBytes) }
        services.startUsageDrain()
        return services
    }
}
