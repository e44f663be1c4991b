import FastCGI
import Glibc
import KimiCore

/// `kimi-gateway <command>`: serve, check-config, hash-key, simulate.
public enum KimiGatewayCommand {
    static let usage = """
    usage:
      kimi-gateway serve [--config FILE] [--socket PATH|HOST:PORT [--socket-group G]]
                         [--workers N] [--log-file PATH]
          Run the FastCGI responder. Without --socket the listening socket is
          fd 0, as spawn-fcgi and systemd socket activation hand it over.
          A unix socket is created mode 0660; --socket-group gives it to the
          web server's group. --workers N forks N worker processes and
          restarts any that dies. Logs go to stderr, or to --log-file.
      kimi-gateway check-config [--config FILE]
          Validate the config (file, .env beside it, environment); exit 0 or 1.
      kimi-gateway hash-key [KEY]
          Print the SHA-256 of an API key for auth.keys[].sha256 (reads stdin
          when KEY is not given, so the key stays out of shell history).
      kimi-gateway simulate [--socket PATH|HOST:PORT [--socket-group G]] [--log-file PATH]
          Run the Kimi API simulator as a FastCGI responder (tests, benchmarks,
          `make run` without KIMI_API_KEY).
      kimi-gateway version
    """

    public static func main(_ argv: [String]) -> Int32 {
        let args = argv.dropFirst()
        guard let command = args.first else {
            print(usage)
            return 2
        }
        do {
            switch command {
            case "serve": return try serve(Options(args.dropFirst()))
            case "check-config": return try checkConfig(Options(args.dropFirst()))
            case "hash-key": return try hashKey(Options(args.dropFirst()))
            case "simulate": return try SimulateCommand.run(Options(args.dropFirst()))
            case "version", "--version": print("kimi-gateway \(Version.current)"); return 0
            case "help", "--help", "-h": print(usage); return 0
            default: throw UsageError("unknown command \(command)")
            }
        } catch {
            fputs("kimi-gateway: \(error)\n\(usage)\n", stderr)
            return 2
        }
    }

    static func loadConfig(_ o: Options) -> ConfigCache? {
        let source = ConfigSource(path: o.values["config"], processEnv: FileIO.environment())
        do {
            return try ConfigCache(source: source)
        } catch {
            fputs("kimi-gateway: config error: \(error)\n", stderr)
            return nil
        }
    }

    /// spawn-fcgi points a forked child's stderr at /dev/null: `--log-file`
    /// reopens it on a file (O_APPEND, so lines from several processes do not
    /// overwrite each other).
    static func redirectLog(_ o: Options) throws {
        guard let path = o.values["log-file"] else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw UsageError("cannot open log file \(path): \(String(cString: strerror(errno)))") }
        // dup2 replaces fd 2 atomically: a line being written goes to the old
        // file or the new one, never nowhere.
        dup2(fd, 2)
        close(fd)
    }

    /// SIGHUP: reopen `--log-file` (after logrotate renamed it); without one,
    /// nothing to do (stderr belongs to whoever started us).
    static func reopenLog(_ o: Options) {
        guard let path = o.values["log-file"] else { return }
        do {
            try redirectLog(o)
            Log.info("log file reopened (\(path))")
        } catch {
            Log.error("SIGHUP: \(error); still writing to the previous log file")
        }
    }

    static func checkConfig(_ o: Options) throws -> Int32 {
        try o.check(allowed: ["config"])
        guard let cache = loadConfig(o) else { return 1 }
        print("config OK (\(o.values["config"] ?? "no file: defaults and environment"))")
        for line in cache.current().summary() { print("  " + line) }
        return 0
    }

    static func hashKey(_ o: Options) throws -> Int32 {
        var key = o.positional.first
        if key == nil {
            key = readLine(strippingNewline: true)
        }
        guard let k = key?.trimmingSpaces(), !k.isEmpty else { throw UsageError("hash-key needs a key") }
        print(SHA256.hex(k))
        return 0
    }

    static func serve(_ o: Options) throws -> Int32 {
        try o.check(allowed: ["config", "socket", "socket-group", "workers", "log-file"])
        try redirectLog(o)
        Signals.install()
        guard let cache = loadConfig(o) else { return 1 }
        let config = cache.current()
        let fd: Int32
        if let spec = o.values["socket"] {
            do { fd = try Listener.open(spec, group: o.values["socket-group"]) } catch { fputs("kimi-gateway: \(error)\n", stderr); return 1 }
        } else {
            guard Listener.inheritedSocketAvailable() else {
                fputs("kimi-gateway: no --socket given and fd 0 is not a listening socket (start under spawn-fcgi, or pass --socket PATH)\n", stderr)
                return 1
            }
            fd = 0
        }
        if let w = o.values["workers"] {
            guard let n = Int(w), (1...64).contains(n) else { throw UsageError("--workers takes 1...64") }
            // Fork before any thread exists: the parent stays single-threaded.
            let r = Supervisor.forkWorkers(n) { reopenLog(o) }
            if !r.isWorker {
                if let spec = o.values["socket"], spec.hasPrefix("/") { unlink(spec) }
                return r.status
            }
        }
        Signals.returnLargeBuffersToTheSystem()
        let services = Services.make(config: config, cache: cache)
        let gateway = Gateway(configCache: cache, services: services)
        let pool = WorkerPool(fd: fd, minThreads: config.server.minThreads, maxThreads: config.server.maxThreads,
                              readTimeoutMs: config.server.readTimeoutMs) {
            gateway.handle(exchange: $0)
        }
        pool.start()
        Log.info("kimi-gateway \(Version.current) pid \(getpid()) serving on \(o.values["socket"] ?? "fd 0"), threads \(config.server.minThreads)...\(config.server.maxThreads)")
        for line in config.summary() { Log.info("config: " + line) }
        if config.upstream.simulated { Log.warn("upstream is the Kimi API SIMULATOR: answers are not from Kimi (no KIMI_API_KEY)") }
        let sig = Signals.waitForTermination { reopenLog(o) }
        let drain = UInt64(cache.current().server.drainTimeoutMs) * 1_000_000
        Log.info("received \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): no new requests, draining \(pool.stats.active) in flight (up to \(drain / 1_000_000) ms)")
        let left = pool.stop(drainNanos: drain)
        if left > 0 { Log.warn("drain timeout: \(left) request(s) cut off") } else { Log.info("drained, exiting") }
        if o.values["workers"] == nil, let spec = o.values["socket"], spec.hasPrefix("/") { unlink(spec) }
        return 0
    }
}

