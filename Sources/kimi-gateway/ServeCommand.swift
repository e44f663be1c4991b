import ArgumentParser
import FastCGI
import GatewayApp
import Glibc
import KimiCore

/// `kimi-gateway serve`: the gateway as a FastCGI responder.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway as a FastCGI responder.",
        discussion: "The config is the file (optional), the .env beside it and the environment; see README. SIGTERM or SIGINT drains requests in flight; SIGHUP reopens --log-file."
    )

    @Option(help: ArgumentHelp("The JSON config file.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Fork this many worker processes (1...64) sharing the socket; a worker that dies is restarted.", valueName: "n"))
    var workers: Int?

    @OptionGroup var listener: ListenerOptions

    func validate() throws {
        if let workers, !(1...64).contains(workers) { throw ValidationError("--workers takes 1...64, got \(workers)") }
    }

    func run() throws {
        let process = ResponderProcess(socket: listener.socket, socketGroup: listener.socketGroup, logFile: listener.logFile)
        do { try process.prepare() } catch { throw Failure("\(error)") }
        guard let cache = ConfigLoading.load(path: config) else { throw ExitCode.failure }
        let config = cache.current()
        Log.jsonLines = config.log.format == .json // the supervisor's lines too
        // Before any thread or fork: every thread of every worker inherits it.
        if config.server.batchScheduling, let why = SchedulingPolicy.useBatch() {
            Log.warn("server.batchScheduling: the kernel refused SCHED_BATCH (\(why)); running under its default policy")
        }
        let fd: Int32
        do { fd = try process.listen() } catch { throw Failure("\(error)") }
        guard let workers else { return try serve(process, cache: cache, fd: fd, restarted: false) }
        // Fork before any thread exists: the parent stays single-threaded.
        let r = Supervisor.forkWorkers(workers) { process.reopenLog() }
        if !r.isWorker {
            process.removeSocket()
            throw ExitCode(r.status)
        }
        try Supervisor.onFreshThread { try serve(process, cache: cache, fd: fd, restarted: r.restarted) }
    }

    /// One responder process's life: services, the pool, until SIGTERM.
    private func serve(_ process: ResponderProcess, cache: ConfigCache, fd: Int32, restarted: Bool) throws {
        let config = cache.current()
        Signals.returnLargeBuffersToTheSystem()
        let services = Services.make(config: config, cache: cache)
        let gateway = Gateway(configCache: cache, services: services)
        let pool = WorkerPool(fd: fd, minThreads: config.server.minThreads, maxThreads: config.server.maxThreads,
                              readTimeoutMs: config.server.readTimeoutMs) { gateway.handle(exchange: $0) }
        let metrics = services.metrics
        pool.everySecond = { [unowned pool] in
            metrics.setProcessGauge(cache.current(), "worker_threads", pool.stats.threads)
            services.sweepConcurrency(cache.current()) // a killed worker's maxConcurrent counts, given back
        }
        pool.start()
        if restarted { metrics.count(config, "worker_restarts_total") }
        Log.info("kimi-gateway \(Version.current) pid \(getpid()) serving on \(process.listeningOn), threads \(config.server.minThreads)...\(config.server.maxThreads)")
        for line in config.summary() { Log.info("config: " + line) }
        for w in config.warnings() { Log.warn("config: " + w) }
        if config.upstream.simulated { Log.warn("upstream is the Kimi API SIMULATOR: answers are not from Kimi (no KIMI_API_KEY)") }
        _ = process.runUntilTerminated(pool) { UInt64(cache.current().server.drainTimeoutMs) * 1_000_000 }
        services.usage?.flush()
        services.spans?.drain(timeoutMs: min(cache.current().otel.timeoutMs, 5_000))
        // Under --workers the supervisor removes the socket once all have exited.
        if workers == nil { process.removeSocket() }
    }
}

/// A failure already explained in its message: printed as
/// `kimi-gateway: <message>`, exit 1, no usage text.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

enum ConfigLoading {
    /// The config, or nil after printing why it cannot be used.
    static func load(path: String?) -> ConfigCache? {
        do {
            return try ConfigCache(source: ConfigSource(path: path, processEnv: FileIO.environment()))
        } catch {
            fputs("kimi-gateway: config error: \(error)\n", stderr)
            return nil
        }
    }
}

/// `kimi-gateway check-config`.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the config (file, .env beside it, environment): exit 0 and a summary, or 1 and the reason."
    )

    @Option(help: ArgumentHelp("The JSON config file.", valueName: "file"))
    var config: String?

    @Flag(name: .customLong("keys-table"), help: "Print every config key (name, variable, default, reload, meaning) as the README's Markdown table, and exit.")
    var keysTable = false

    func run() throws {
        if keysTable { return print(ConfigKey.markdownTable(), terminator: "") }
        guard let cache = ConfigLoading.load(path: config) else { throw ExitCode.failure }
        print("config OK (\(config ?? "no file: defaults and environment"))")
        for line in cache.current().summary() { print("  " + line) }
        for w in cache.current().warnings() { fputs("warning: \(w)\n", stderr) }
    }
}
