import Glibc
import KimiCore
import Storage
import Upstream

/// Long-lived collaborators of the pipeline, shared by all worker threads.
public final class Services: @unchecked Sendable {
    public let models: ModelsCache
    public let limiter: MachineRateLimiter
    /// The machine's metrics, in their own shared table.
    public let metrics = GatewayMetrics()
    /// The upstream keys' shared health, in the limiter's table.
    public let pool: UpstreamPool
    /// Upstream answers buffered at once by this process.
    public let buffers: BufferBudget
    /// Who uploaded which file; nil when the database cannot be opened
    /// (`storageProblem` says why, and file routes answer 503).
    public let files: FileRegistry?
    public let storageProblem: String
    /// Extracted document texts (`/api/chat/document`); nil without a directory.
    public let documents: DocumentCache?
    /// The usage ledger, this process's journal and its book of usage
    /// (nil without a database: `usageProblem` says why).
    public let usage: UsageService?
    public let usageProblem: String
    /// The upstream transport of the calling thread: curl's handle kept per
    /// thread (connections reused); unit tests script it.
    public var transport: () -> UpstreamTransport = { UpstreamClient.forCurrentThread() }
    /// Client keys created at run time; nil without a database.
    let keys: KeyDirectory?
    /// This process's share of the keys' concurrency counts (`maxConcurrent`),
    /// and the directory where every process keeps its share.
    var concurrency: ConcurrencyLedger?
    var concurrencyDirectory = ""
    /// This process's OTLP span exporter (`otel.*`); nil until `make` sets it (unit tests: none).
    public var spans: SpanExporter?

    public init(maxBufferedBytes: Int = GatewayConfig().server.maxBufferedBytes, database: String? = nil,
                usageDatabase: String? = nil, documents: GatewayConfig.Documents? = nil)
    {
        buffers = BufferBudget(limit: maxBufferedBytes)
        limiter = MachineRateLimiter()
        pool = UpstreamPool(limiter: limiter)
        models = ModelsCache { [pool] key, config in
            if case .out = KeyHealth.use(pool.word(key, config: config, now: Clock.wallMicros()), now: Clock.wallMicros()) { return false }
            return true
        }
        self.documents = documents.map { DocumentCache(directory: $0.cacheDir, maxBytes: $0.cacheBytes) }
        var opened: SQLiteDatabase?
        (files, storageProblem, opened) = Self.open(database) { try FileRegistry(database: $0) }
        keys = opened.flatMap { db in (try? KeyStore(database: db)).map { KeyDirectory(store: $0) } }
        let usagePath = usageDatabase ?? database
        let shared = usagePath == database ? opened : nil
        (usage, usageProblem, _) = Self.open(usagePath, reusing: shared) { db in try UsageService(database: db, path: usagePath!) }
        if database != nil, !storageProblem.isEmpty { Log.error("storage: \(storageProblem); file routes will answer 503") }
        if usagePath != nil, !usageProblem.isEmpty { Log.error("usage: \(usageProblem); usage is not recorded and budgets cannot be enforced") }
        limiter.onFallback = { [metrics] c in metrics.count(c, "state_fallbacks_total") }
    }

    /// Opens (or reuses) the database at `path` and builds `make` on it.
    private static func open<T>(_ path: String?, reusing: SQLiteDatabase? = nil,
                                _ make: (SQLiteDatabase) throws -> T) -> (T?, String, SQLiteDatabase?)
    {
        guard let path else { return (nil, "no database configured", nil) }
        do {
            let db: SQLiteDatabase
            if let reusing { db = reusing } else {
                guard SharedFiles.ensureParent(of: path) else { throw SQLiteDatabase.Failure(description: "cannot create the directory of \(path)") }
                db = try SQLiteDatabase(path: path)
            }
            return (try make(db), "", db)
        } catch {
            return (nil, "database \(path): \(error)", nil)
        }
    }

    /// The request's provisional row (see `InFlightSlots`), at admission:
    /// what the ledger keeps if this process dies before the request ends.
    func beginUsage(_ capture: UsageCapture, ctx: RequestContext) {
        guard ctx.config.usage.enabled, let usage else { return }
        capture.startUnixMs = Clock.wallMicros() / 1000 - Int64((Clock.monotonicNanos() &- ctx.startNanos) / 1_000_000)
        capture.ticket = usage.begin(capture.provisional(requestID: ctx.request.requestID, key: ctx.apiKey, client: Self.client(ctx),
                                                          route: ctx.request.path, startUnixMs: capture.startUnixMs!))
    }

    private static func client(_ ctx: RequestContext) -> String { ctx.apiKey.map { "key:" + $0.fingerprint } ?? ctx.request.remoteAddr }

    /// Writes the request's usage row to this process's journal (one
    /// copy into a mapping; SQLite is the drain thread's business), clears
    /// its provisional row, and settles its reservations — token limit and
    /// budgets — with what it used.
    func recordUsage(_ capture: UsageCapture, ctx: RequestContext, status: Int, clientLeft: Bool, startNanos: UInt64) {
        let recording = ctx.config.usage.enabled && usage != nil
        guard recording || capture.reservation != nil || !capture.budgetReservations.isEmpty else { return }
        let now = Clock.monotonicNanos()
        let nowMicros = Clock.wallMicros()
        let t = capture.tokens(status: status, clientLeft: clientLeft)
        let used = t.prompt.addingSaturated(t.completion)
        if let r = capture.reservation {
            limiter.settle(key: r.key, delta: used.addingSaturated(-r.tokens), policy: r.policy, config: ctx.config, now: nowMicros)
        }
        let usedMicros = capture.price?.micros(prompt: t.prompt, cached: t.cached ?? 0, completion: t.completion) ?? 0
        settleBudgets(capture.budgetReservations, usedTokens: used, usedMicros: usedMicros, config: ctx.config)
        guard recording else { return }
        let startMs = capture.startUnixMs ?? nowMicros / 1000 - Int64((now &- startNanos) / 1_000_000)
        let record = capture.record(requestID: ctx.request.requestID, key: ctx.apiKey, client: Self.client(ctx), route: ctx.request.path,
                                    status: status, clientLeft: clientLeft, startNanos: startNanos, endNanos: now, startUnixMs: startMs,
                                    upstreamKey: ctx.upstreamKey?.fingerprint ?? "", attempts: ctx.upstreamAttempts)
        usage?.record(record, pending: ctx.apiKey?.budget != nil, ticket: capture.ticket)
        if let key = ctx.apiKey, key.budget != nil, let fleet = limiter.fleetStore(for: ctx.config),
           !fleet.addUsage(fingerprint: key.fingerprint, at: record.at, UsageCounts(record)) {
            limiter.onFallback?(ctx.config)
        }
    }

    /// Settles budget reservations with the tokens and the money used (0:
    /// a refund of all), in the counters they were taken from (`BudgetCounter`).
    func settleBudgets(_ reservations: [UsageCapture.BudgetReservation], usedTokens: Int, usedMicros: Int, config: GatewayConfig) {
        let now = Clock.wallMicros()
        for r in reservations {
            let delta = (r.measure == .tokens ? usedTokens : usedMicros).addingSaturated(-r.amount)
            guard delta != 0 else { continue }
            limiter.update(key: r.key, config: config, now: now) { word in (BudgetCounter.settle(word: word, period: r.period, delta: delta), ()) }
        }
    }

    /// What a key used today and this month: this machine's book, and with
    /// `state.backend` redis the fleet's counts, period by period the
    /// larger of the two (the fleet's counts start when Redis is first
    /// used, and miss what a machine recorded while Redis was down; the
    /// machine's book misses the other machines).
    func spent(key: GatewayConfig.APIKey?, book: UsageService, config: GatewayConfig, nowMs: Int64) -> UsageBook.Spent {
        let fp = key?.fingerprint ?? ""
        let local = book.spent(fingerprint: fp, nowMs: nowMs)
        guard key?.budget != nil, let fleet = limiter.fleetStore(for: config) else { return local }
        guard let shared = fleet.usage(fingerprint: fp, now: nowMs) else {
            limiter.onFallback?(config)
            return local
        }
        let larger = { (a: UsageCounts, b: UsageCounts) in
            var l = a.totalTokens >= b.totalTokens ? a : b
            l.costMicros = max(a.costMicros, b.costMicros)
            return l
        }
        return UsageBook.Spent(day: larger(local.day, shared.day), month: larger(local.month, shared.month))
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
                                usageDatabase: config.usage.database.isEmpty ? nil : config.usage.database, documents: config.documents)
        Log.jsonLines = config.log.format == .json
        cache.onReload = { [buffers = services.buffers, metrics = services.metrics] in
            Log.jsonLines = $0.log.format == .json
            buffers.setLimit($0.server.maxBufferedBytes)
            metrics.count($0, "config_reloads_total", [("result", "ok")])
        }
        // Each process reloads on its own: a change seen by 4 workers counts 4.
        cache.onRejected = { [metrics = services.metrics] in metrics.count($0, "config_reloads_total", [("result", "rejected")]) }
        services.usage?.start(intervalMs: config.usage.drainIntervalMs)
        services.limiter.open(for: config)
        services.spans = SpanExporter(configs: { cache.current() }, metrics: services.metrics, version: Version.current)
        if config.otel.enabled { Log.info("otel: traces to \(HeaderSafety.printable(config.otel.tracesURL, max: 120)) (\(config.otel.protocolName.rawValue), sampler \(config.otel.sampler)\(config.otel.captureContent ? ", content captured" : ""))") }
        services.concurrencyDirectory = SharedFiles.directory(of: config.storage.database) + "/concurrency"
        services.sweepConcurrency(config)
        do { services.concurrency = try ConcurrencyLedger(directory: services.concurrencyDirectory) } catch {
            Log.error("keys: \(error); maxConcurrent is not enforced by this process")
        }
        return services
    }
}

extension Services {
    /// Gives back the concurrency counts of processes that are gone (a
    /// SIGKILLed worker's requests): at start and every second.
    public func sweepConcurrency(_ config: GatewayConfig) {
        guard !concurrencyDirectory.isEmpty else { return }
        ConcurrencyLedger.sweep(directory: concurrencyDirectory) { key, count in
            limiter.update(key: key, config: config, now: Clock.wallMicros()) { word in (ConcurrencyCap.release(word: word, count), ()) }
        }
    }

    /// One more request in flight for the request's key, when it has a
    /// `maxConcurrent`: 429 naming the cap beyond it, before anything else.
    func acquireConcurrency(_ ctx: RequestContext) throws {
        guard let key = ctx.apiKey, let cap = key.maxConcurrent else { return }
        let slot = ConcurrencyCap.slotKey(keyID: key.id ?? key.sha256)
        concurrency?.add(slot, 1)
        let admitted = limiter.update(key: slot, config: ctx.config, now: Clock.wallMicros()) { ConcurrencyCap.acquire(word: $0, cap: cap) }
        guard admitted else {
            concurrency?.add(slot, -1)
            ctx.logNotes.append("concurrency-limited")
            ctx.metricsNotes.rateLimited = "concurrency"
            throw GatewayError.concurrencyLimited(cap: cap)
        }
        ctx.concurrencySlot = slot
    }

    func releaseConcurrency(_ ctx: RequestContext) {
        guard let slot = ctx.concurrencySlot else { return }
        limiter.update(key: slot, config: ctx.config, now: Clock.wallMicros()) { (ConcurrencyCap.release(word: $0), ()) }
        concurrency?.add(slot, -1)
        ctx.concurrencySlot = nil
    }
}
