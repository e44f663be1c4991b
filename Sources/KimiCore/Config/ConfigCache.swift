#if canImport(Glibc)
import Glibc
#endif

/// Where the config comes from: the file (optional), the `.env` beside it,
/// and the process environment.
public struct ConfigSource: Sendable {
    public var path: String?
    public var processEnv: [String: String]
    public init(path: String?, processEnv: [String: String]) { self.path = path; self.processEnv = processEnv }

    public var dotEnvPath: String {
        guard let path, let slash = path.lastIndex(of: "/") else { return ".env" }
        return String(path[...slash]) + ".env"
    }

    /// Reads and validates everything. Pure except for the two file reads.
    public func load() throws(ConfigError) -> GatewayConfig {
        var env = processEnv
        if let text = FileIO.readText(dotEnvPath) {
            env = DotEnv.merged(dotEnv: DotEnv.parse(text), processEnv: processEnv)
        }
        var config = GatewayConfig()
        if let path {
            guard let bytes = FileIO.read(path) else { throw ConfigError("--config", "cannot read \(path): \(FileIO.unreadableReason(path))") }
            config = try GatewayConfig.parse(fileBytes: bytes)
        }
        return try config.applying(env: env).validated()
    }

    /// Modification stamps of the file and `.env`; a change of either reloads.
    func stamp() -> [Int64] { [path.map(FileIO.mtimeNanos) ?? -1, FileIO.mtimeNanos(dotEnvPath)] }
}

/// The per-process cache of the parsed config. `current()` stats the files
/// at most once a second (one thread does it; the others never wait); a
/// changed, valid file replaces the config for new requests (requests in
/// flight keep the value they took), and a broken new file keeps the old
/// config and logs why.
public final class ConfigCache: @unchecked Sendable {
    final class Box { let config: GatewayConfig; init(_ c: GatewayConfig) { config = c } }

    public let source: ConfigSource
    private let published: AtomicReference<Box>
    private let gate: IntervalGate
    private let lock = Lock() // only around a reload
    private var stamp: [Int64]
    private var lastBadStamp: [Int64]?
    /// Called after a successful reload (e.g. to resize the limiter).
    public var onReload: ((GatewayConfig) -> Void)?
    /// Called after a change was rejected, with the config that stays.
    public var onRejected: ((GatewayConfig) -> Void)?

    public init(source: ConfigSource, checkIntervalNanos: UInt64 = 1_000_000_000) throws(ConfigError) {
        self.source = source
        stamp = source.stamp()
        published = AtomicReference(Box(try source.load()))
        gate = IntervalGate(intervalNanos: checkIntervalNanos)
    }

    public func current() -> GatewayConfig {
        if gate.tryEnter() { reloadIfChanged() }
        return published.load().config
    }

    private func reloadIfChanged() {
        var rejected = false
        let reloaded: GatewayConfig? = lock.withLock {
            let s = source.stamp()
            guard s != stamp, s != lastBadStamp else { return nil }
            do {
                let (fresh, refused) = try source.load().keepingRestartOnly(from: published.load().config)
                if !refused.isEmpty {
                    Log.warn("config: restart needed for \(refused.joined(separator: ", ")); the running values stay until then")
                }
                published.store(Box(fresh))
                stamp = s
                lastBadStamp = nil
                Log.info("config reloaded from \(source.path ?? "environment")")
                return fresh
            } catch {
                lastBadStamp = s
                rejected = true
                Log.error("config change rejected, keeping the previous config: \(error)")
                return nil
            }
        }
        if let reloaded { onReload?(reloaded) }
        if rejected { onRejected?(published.load().config) }
    }
}
