import Fleet
import KimiCore
import Storage
import Glibc
import Synchronization

/// The client keys created at run time, as each process authenticates them
/// — a snapshot by SHA-256, read without a lock on every request,
/// reloaded from the key store when its generation changed. A thread of its
/// own looks at the generation every `checkNanos`, never a request: the
/// database's connection is shared with the ledger's drain, and a request
/// that waited for its lock would be a tail of the drain's making. So a
/// create, change, rotation or revocation made by any process of the
/// machine is honoured within that time; expiries and the end of a
/// rotation's grace are compared with the clock on every request, so they
/// need no reload.
final class KeyDirectory: @unchecked Sendable {
    final class Snapshot {
        let generation: Int64
        /// Secret's SHA-256 (hex) → key. A dictionary look-up, not a scan:
        /// what is compared is the hash of the presented secret, so its
        /// timing says nothing about any stored secret.
        let bySHA256: [String: GatewayConfig.APIKey]
        let hasAdmin: Bool
        init(generation: Int64, keys: [GatewayConfig.APIKey]) {
            self.generation = generation
            var map: [String: GatewayConfig.APIKey] = [:]
            for k in keys { map[k.sha256] = k }
            bySHA256 = map
            hasAdmin = keys.contains { $0.role == .admin }
        }
    }

    /// 250 ms: a change is seen within 1 s even by a process whose
    /// requests just missed a check.
    static let checkNanos: UInt64 = 250_000_000

    let store: KeyStore
    private let current: AtomicReference<Snapshot>
    private var watcherPid: pid_t = 0
    private let lock = Lock()
    /// The fleet's Redis under the current config (`state.backend` redis), or nil.
    var fleetSource: (@Sendable () -> RedisWordStore?)?
    private var fleetSync = KeyFleetSync()
    private let fleetLock = Lock()
    private let fleetErrorLog = IntervalGate(intervalNanos: 10_000_000_000)

    init(store: KeyStore) {
        self.store = store
        current = AtomicReference(Snapshot(generation: -1, keys: []))
        refresh(force: true)
    }

    /// The snapshot to authenticate with (one atomic load). The first call
    /// in a process starts its watcher (a forked worker has none of its
    /// parent's threads).
    func snapshot() -> Snapshot {
        if watcherPid != getpid() { startWatcher() }
        return current.load()
    }

    private func startWatcher() {
        lock.withLock {
            guard watcherPid != getpid() else { return }
            // What changed since the snapshot was loaded (the process may
            // have started long before its first request), now, not in 250 ms.
            refresh(force: false)
            watcherPid = getpid()
            let me = getpid()
            Thread.detached(stackBytes: 256 << 10) { [weak self] in
                while let self, self.watcherPid == me {
                    usleep(UInt32(Self.checkNanos / 1000))
                    self.syncFleet()
                    self.refresh(force: false)
                }
            }
        }
    }

    /// After an admin change in this process: published to the fleet (when
    /// there is one) before the answer, and reloaded here at once.
    func changed() {
        syncFleet()
        refresh(force: true)
    }

    /// One `KeyFleetSync` with the fleet's Redis, if there is one.
    func syncFleet() {
        guard let fleet = fleetSource?() else { return }
        fleetLock.withLock {
            do {
                guard let outcome = try fleetSync.sync(store: store, fleet: fleet) else { return }
                if outcome.adopted > 0 { Log.info("keys: adopted \(outcome.adopted) key change(s) from the fleet (redis \(fleet.endpoint))") }
                if outcome.published > 0 { Log.info("keys: published \(outcome.published) key change(s) to the fleet (redis \(fleet.endpoint))") }
            } catch {
                if fleetErrorLog.tryEnter() { Log.error("keys: cannot sync with the fleet (\(error)); this machine's keys stay as they are") }
            }
        }
    }

    /// Reloads when the generation moved (or `force`); a store that cannot
    /// be read keeps the last snapshot (and says so).
    func refresh(force: Bool) {
        do {
            let generation = try store.generation()
            guard force || generation != current.load().generation else { return }
            let nowMs = Clock.wallMicros() / 1000
            let keys = try store.all().flatMap { $0.apiKeys(nowMs: nowMs) }
            current.store(Snapshot(generation: generation, keys: keys))
        } catch {
            Log.error("keys: cannot read the key store (\(error)); keeping the keys loaded before")
        }
    }

    /// The key whose secret hashes to `digestHex`, with why it may not be
    /// used: expired (its expiry, or its rotation's grace, has passed).
    func find(sha256 digestHex: String, nowMs: Int64) -> (key: GatewayConfig.APIKey, expired: Bool)? {
        guard let k = snapshot().bySHA256[digestHex] else { return nil }
        return (k, k.expiresAtMs.map { $0 <= nowMs } ?? false)
    }
}
