import Fleet
import KimiCore
import Storage

/// Client keys across a Redis fleet (`state.backend` redis):
/// each machine keeps its keys in its own database (they survive restarts
/// and a Redis that lost its data), and the fleet's Redis holds every
/// entry with a version (`KeyStore.Entry.fleetVersion`) and a generation.
/// A sync — each process's key watcher every 250 ms, and at once after an
/// admin change — publishes what this machine has that wins over Redis's
/// and adopts what Redis has that wins over this machine's; an entry only
/// ever replaces an older one (`Entry.wins`, `FleetScripts.keyPut`), so a
/// revocation anywhere is a revocation everywhere and no machine coming
/// back undoes a newer change. A change on one machine is in Redis before
/// its answer, and every other machine's next look (≤ 250 ms) adopts it.
///
/// A look costs one `GET` of the generation while nothing changed, here
/// and in the machine's database; a machine whose Redis is down keeps its
/// keys and publishes its changes when Redis is back.
struct KeyFleetSync: Sendable {
    /// The generations both sides had at the last complete sync (-1: none yet).
    private(set) var seenRemote: Int64 = -1
    private(set) var seenLocal: Int64 = -1

    /// What a sync did.
    struct Outcome: Equatable {
        var adopted = 0
        var published = 0
    }

    /// One sync; nil when Redis did not answer (nothing is marked seen,
    /// so the next look tries again).
    mutating func sync(store: KeyStore, fleet: RedisWordStore) throws -> Outcome? {
        guard let remoteGen = fleet.keysGeneration() else { return nil }
        let localGen = try store.generation()
        guard remoteGen != seenRemote || localGen != seenLocal else { return Outcome() }
        guard let texts = fleet.keyEntries() else { return nil }
        let remote = texts.values.compactMap(KeyStore.Entry.init(fleetJSON:))
        let (toLocal, toRemote) = KeyStore.reconcile(local: try store.all(), remote: remote)
        var outcome = Outcome()
        outcome.adopted = try store.adopt(toLocal)
        var gen = remoteGen
        if !toRemote.isEmpty {
            guard let after = fleet.putKeyEntries(toRemote.map { ($0.id, $0.fleetVersion, $0.fleetJSON) }) else { return nil }
            (gen, outcome.published) = (after, toRemote.count)
        }
        // What this sync wrote on either side is seen: the next look is one GET.
        (seenRemote, seenLocal) = (gen, try store.generation())
        return outcome
    }
}
