import Glibc
import Testing
@testable import KimiCore
@testable import Storage

/// Keys as data (issue #31): the store of keys created at run time, and the
/// concurrency counts a killed process gives back.
@Suite struct KeyStoreTests {
    static func fresh() throws -> (String, KeyStore) {
        var template = Array("/tmp/kimi-keys-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        return (dir, try KeyStore(database: try SQLiteDatabase(path: dir + "/gateway.db")))
    }

    @Test func aSecretIsShownOnceAndStoredOnlyAsItsHash() throws {
        let (dir, store) = try Self.fresh()
        let (entry, secret) = try store.create(name: "dev", spec: ["name": "dev", "models": ["kimi-k2.6"]], expiresAtMs: nil)
        #expect(secret.hasPrefix("kg-") && secret.utf8.count == 43)
        #expect(secret.dropFirst(3).utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) })
        #expect(entry.sha256 == SHA256.hex(secret))
        let bytes = FileIO.read(dir + "/gateway.db", limit: 64 << 20) ?? []
        #expect(!String(decoding: bytes, as: UTF8.self).contains(secret))
        #expect(Set((0..<50).map { _ in KeyStore.newSecret() }).count == 50)
        let keys = entry.apiKeys(nowMs: 0)
        #expect(keys.count == 1 && keys[0].id == entry.id && keys[0].models == ["kimi-k2.6"] && keys[0].name == "dev")
    }

    @Test func everyWriteMovesTheGenerationAndChangesAreTransactions() throws {
        let (_, store) = try Self.fresh()
        let g0 = try store.generation()
        let (entry, _) = try store.create(name: "a", spec: ["name": "a"], expiresAtMs: nil)
        let g1 = try store.generation()
        _ = try store.update(entry.id) { $0.enabled = false }
        let g2 = try store.generation()
        #expect(g0 < g1 && g1 < g2)
        #expect(try store.get(entry.id)?.enabled == false && entry.apiKeys(nowMs: 0).count == 1)
        #expect(try store.get(entry.id)!.apiKeys(nowMs: 0).isEmpty) // disabled: authenticates nothing
        struct Stop: Error {}
        #expect(throws: Stop.self) { _ = try store.update(entry.id) { $0.name = "changed"; throw Stop() } }
        #expect(try store.get(entry.id)?.name == "a" && store.generation() == g2)
        #expect(try store.update("key_none") { $0.name = "x" } == nil)
    }

    @Test func aRotatedSecretAuthenticatesUntilItsGraceEndsAndARevokedKeyNotAtAll() throws {
        let (_, store) = try Self.fresh()
        let (entry, old) = try store.create(name: "r", spec: ["name": "r"], expiresAtMs: nil)
        let (rotated, new) = try #require(try store.rotate(entry.id, graceSeconds: 60, nowMs: 1_000_000))
        #expect(new != old && rotated.sha256 == SHA256.hex(new) && rotated.previousSHA256 == SHA256.hex(old))
        let during = rotated.apiKeys(nowMs: 1_030_000)
        #expect(Set(during.map(\.sha256)) == [SHA256.hex(new), SHA256.hex(old)])
        #expect(during.first { $0.sha256 == SHA256.hex(old) }?.expiresAtMs == 1_060_000)
        #expect(rotated.apiKeys(nowMs: 1_060_001).map(\.sha256) == [SHA256.hex(new)])
        let revoked = try #require(try store.revoke(entry.id))
        #expect(revoked.apiKeys(nowMs: 0).isEmpty && revoked.state == "revoked" && revoked.previousSHA256 == nil)
        #expect(try store.all().count == 1) // kept for the ledger
    }

    @Test func theConcurrencyCapAdmitsUpToItsCapAndReleasesNeverBelowZero() {
        var word: Int64 = 0
        var admitted = 0
        for _ in 0..<5 {
            let (new, ok) = ConcurrencyCap.acquire(word: word, cap: 3)
            if ok { admitted += 1; word = new! }
        }
        #expect(admitted == 3 && word == 3)
        #expect(ConcurrencyCap.release(word: 3) == 2 && ConcurrencyCap.release(word: 0) == nil && ConcurrencyCap.release(word: 2, 5) == 0)
        #expect(ConcurrencyCap.acquire(word: -4, cap: 1) == (1, true)) // a word below zero counts as none
    }

    @Test func aGoneProcesssCountsAreGivenBackOnceAndALiveOnesKept() throws {
        var template = Array("/tmp/kimi-conc-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!) + "/concurrency"
        let mine = try ConcurrencyLedger(directory: dir)
        mine.add(42, 1); mine.add(42, 1); mine.add(42, -1); mine.add(7, 3)
        #expect(mine.count(42) == 1 && mine.count(7) == 3)
        // A killed process's file: a pid that is not running.
        let dead = dir + "/999999999-1.slots"
        let fd = open(dead, O_RDWR | O_CREAT, 0o600)
        var slots = [UInt8](repeating: 0, count: ConcurrencyLedger.slots * ConcurrencyLedger.slotBytes)
        slots.withUnsafeMutableBytes { p in
            p.storeBytes(of: UInt64(42), toByteOffset: 5 * 16, as: UInt64.self)
            p.storeBytes(of: Int64(2), toByteOffset: 5 * 16 + 8, as: Int64.self)
        }
        _ = slots.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        var given: [UInt64: Int64] = [:]
        #expect(ConcurrencyLedger.sweep(directory: dir) { given[$0, default: 0] += $1 } == 1)
        #expect(given == [42: 2] && access(dead, F_OK) != 0 && access(mine.path, F_OK) == 0)
        #expect(ConcurrencyLedger.sweep(directory: dir) { _, _ in Issue.record("swept twice") } == 0)
    }
}

/// Keys across a Redis fleet (issue #31): which of two versions of an entry
/// wins, what each side lacks, and adopting the winners.
@Suite struct KeyStoreFleetTests {
    func entry(_ id: String, updated: Int64, name: String = "k", revoked: Int64? = nil) -> KeyStore.Entry {
        KeyStore.Entry(id: id, name: name, sha256: SHA256.hex(id), spec: ["name": .string(name)], expiresAtMs: nil,
                       enabled: true, revokedAtMs: revoked, previousSHA256: nil, previousUntilMs: nil, createdAtMs: 1, updatedAtMs: updated)
    }

    @Test func theNewerChangeWinsARevocationIsFinalAndATieSettlesTheSameEverywhere() {
        let old = entry("key_1", updated: 100), new = entry("key_1", updated: 200, name: "renamed")
        #expect(new.wins(over: old) && !old.wins(over: new) && old.wins(over: nil))
        let revoked = entry("key_1", updated: 150, revoked: 150)
        #expect(revoked.wins(over: new)) // an older revocation still beats a newer change
        #expect(!entry("key_1", updated: 10_000, name: "back").wins(over: revoked))
        let a = entry("key_1", updated: 300, name: "a"), b = entry("key_1", updated: 300, name: "b")
        #expect(a.wins(over: b) != b.wins(over: a) && !a.wins(over: a))
    }

    @Test func anEntryTravelsAsJSONWithEveryColumnAndNoSecret() {
        var e = entry("key_9", updated: 42, name: "dev\t\"x\"")
        e.previousSHA256 = String(repeating: "b", count: 64)
        e.previousUntilMs = 99
        e.expiresAtMs = 1_800_000_000_000
        e.enabled = false
        #expect(KeyStore.Entry(fleetJSON: e.fleetJSON) == e)
        #expect(KeyStore.Entry(fleetJSON: "{\"id\":\"x\"}") == nil && KeyStore.Entry(fleetJSON: "not json") == nil)
    }

    @Test func reconcilingSaysWhatEachSideLacks() {
        let local = [entry("key_a", updated: 5), entry("key_b", updated: 9), entry("key_c", updated: 1)]
        let remote = [entry("key_a", updated: 7, name: "newer"), entry("key_b", updated: 3), entry("key_d", updated: 2)]
        let (toLocal, toRemote) = KeyStore.reconcile(local: local, remote: remote)
        #expect(toLocal.map(\.id) == ["key_a", "key_d"] && toLocal[0].name == "newer")
        #expect(toRemote.map(\.id) == ["key_b", "key_c"])
        #expect(KeyStore.reconcile(local: local, remote: local).toLocal.isEmpty && KeyStore.reconcile(local: local, remote: local).toRemote.isEmpty)
    }

    @Test func adoptingStoresOnlyWinnersAndMovesTheGenerationOnlyThen() throws {
        let (_, store) = try KeyStoreTests.fresh()
        let (mine, _) = try store.create(name: "mine", spec: ["name": "mine"], expiresAtMs: nil, nowMs: 500)
        let g = try store.generation()
        #expect(try store.adopt([entry(mine.id, updated: 400, name: "stale")]) == 0 && store.generation() == g)
        #expect(try store.adopt([entry(mine.id, updated: 600, name: "fresh"), entry("key_new", updated: 1)]) == 2)
        #expect(try store.generation() == g + 1)
        #expect(try store.get(mine.id)?.name == "fresh" && store.get("key_new") != nil)
    }
}
