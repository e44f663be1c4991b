import KimiCore
import Synchronization
import Upstream

/// The upstream's model list (`GET /models`), shared by the threads of a
/// process and read as a `ModelCatalogue` under the config in force. Kept
/// for `upstream.modelsCacheSeconds`; a failed fetch is remembered for
/// `retryFailedNanos` so an unreachable upstream costs one attempt per
/// interval, not one per request; a model the list does not hold triggers
/// one refresh at most once a minute per process before it is refused (a
/// model Kimi has just added works at once).
///
/// The catalogue is built once per fetched list and configured model list,
/// not per request: building it (a dictionary of the list's entries) cost
/// ~37,000 instructions, 11.6 % of a relayed completion (callgrind, one
/// worker, 500 completions).
public final class ModelsCache: @unchecked Sendable {
    private struct Fetched {
        let at: UInt64
        /// nil: the fetch failed (then `lastGood` serves).
        let list: JSON?
        /// The catalogue of `list ?? lastGood` under `configured`.
        var built: ModelCatalogue
        var configured: [GatewayConfig.Model]?
    }

    private let fetched = Locked<Fetched?>(nil)
    private let lastGood = Locked<JSON?>(nil)
    private let lastUnknownRefresh = Atomic<UInt64>(0)
    /// One fetch at a time per process: threads that find the list stale
    /// together wait for one answer instead of asking the upstream each.
    private let refreshing = Lock()
    static let retryFailedNanos: UInt64 = 10_000_000_000
    static let unknownModelRefreshNanos: UInt64 = 60_000_000_000

    /// Whether a key may be asked now (the pool's shared health): a key
    /// every process knows is refused is not asked for the list either.
    private let usable: (UpstreamKey, GatewayConfig) -> Bool

    public init(usable: @escaping (UpstreamKey, GatewayConfig) -> Bool = { _, _ in true }) { self.usable = usable }

    func catalogue(config: GatewayConfig, budget: BufferBudget) -> ModelCatalogue {
        let now = Clock.monotonicNanos()
        if let f = fetched.get() {
            let ttl = f.list == nil ? Self.retryFailedNanos : UInt64(config.upstream.modelsCacheSeconds) * 1_000_000_000
            if now &- f.at < ttl { return built(f, config: config) }
        }
        return refreshing.withLock {
            // Another thread may have fetched while this one waited.
            if let f = fetched.get(), f.at > now { return built(f, config: config) }
            return refresh(config: config, budget: budget, now: Clock.monotonicNanos())
        }
    }

    private static func configured(_ config: GatewayConfig) -> [GatewayConfig.Model]? {
        config.upstream.modelsConfigured ? config.upstream.models : nil
    }

    /// `f`'s catalogue under `config`, built again only when a reload changed the configured models.
    private func built(_ f: Fetched, config: GatewayConfig) -> ModelCatalogue {
        let configured = Self.configured(config)
        if f.configured == configured { return f.built }
        let cat = ModelCatalogue.make(upstreamList: f.list ?? lastGood.get(), config: config)
        fetched.update { cur in
            if cur?.at == f.at { cur?.built = cat; cur?.configured = configured }
        }
        return cat
    }

    /// The catalogue, refreshed first (at most once a minute per process)
    /// when it does not hold `model`.
    func catalogue(config: GatewayConfig, budget: BufferBudget, lookingFor model: String) -> ModelCatalogue {
        let cat = catalogue(config: config, budget: budget)
        guard !cat.contains(model) else { return cat }
        let now = Clock.monotonicNanos()
        let last = lastUnknownRefresh.load(ordering: .relaxed)
        guard last == 0 || now &- last >= Self.unknownModelRefreshNanos,
              lastUnknownRefresh.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else { return cat }
        return refreshing.withLock { refresh(config: config, budget: budget, now: Clock.monotonicNanos()) }
    }

    private func refresh(config: GatewayConfig, budget: BufferBudget, now: UInt64) -> ModelCatalogue {
        var list: JSON?
        // The first key that answers (the list is the same for every account).
        for key in config.upstream.keys where usable(key, config) {
            let req = config.upstreamRequest("GET", "/models", idleMs: min(config.upstream.idleTimeoutMs, 10_000), key: key)
            if let call = try? BufferedCall.run(req, key: key, budget: budget),
               let parsed = try? JSON.parse(call.body), parsed["data"]?.arrayValue != nil
            {
                list = parsed
                lastGood.set(parsed)
                break
            }
        }
        let cat = ModelCatalogue.make(upstreamList: list ?? lastGood.get(), config: config)
        fetched.set(Fetched(at: now, list: list, built: cat, configured: Self.configured(config)))
        return cat
    }
}
