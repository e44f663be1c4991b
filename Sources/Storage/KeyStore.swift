import Glibc
import KimiCore

/// Client keys created at run time, in the gateway's SQLite
/// database, shared by every process of the machine. A secret is shown
/// once, when it is made, and stored only as its SHA-256. Every write bumps
/// one generation number in the same transaction: a process reloads the
/// keys when it sees it change (`KeyDirectory`). Writes are transactions
/// (`BEGIN IMMEDIATE`), so concurrent admin changes lose no update.
public final class KeyStore: @unchecked Sendable {
    /// One key as stored: what an admin sees (never the secret).
    public struct Entry: Equatable, Sendable {
        public var id: String
        public var name: String
        public var sha256: String
        /// The limits as a config key entry (`GatewayConfig.APIKey.parse`):
        /// role, models, rateLimit, budget, maxConcurrent, note.
        public var spec: JSON
        public var expiresAtMs: Int64?
        public var enabled: Bool
        public var revokedAtMs: Int64?
        /// A rotated-out secret's hash, valid until `previousUntilMs`.
        public var previousSHA256: String?
        public var previousUntilMs: Int64?
        public var createdAtMs: Int64
        public var updatedAtMs: Int64

        /// The keys this entry authenticates at `nowMs`: its secret, and a
        /// rotated-out one during its grace; none once revoked or disabled.
        public func apiKeys(nowMs: Int64) -> [GatewayConfig.APIKey] {
            guard enabled, revokedAtMs == nil, let key = apiKey else { return [] }
            var out = [key]
            if let previous = previousSHA256, let until = previousUntilMs, until > nowMs {
                var old = key
                old.sha256 = previous
                old.expiresAtMs = min(until, expiresAtMs ?? .max)
                out.append(old)
            }
            return out
        }

        /// The key its current secret makes, whatever its state (what the
        /// ledger's rows of it are under: its id's fingerprint).
        public var apiKey: GatewayConfig.APIKey? {
            guard var key = try? GatewayConfig.APIKey.parse(spec.setting("sha256", .string(sha256)), key: "key") else { return nil }
            key.id = id
            key.stableFingerprint = String(SHA256.hex(id).prefix(16))
            key.expiresAtMs = expiresAtMs
            return key
        }

        /// The order of an entry's versions across a fleet: a revocation
        /// above everything (it is for good: no machine's older change
        /// brings a key back), then the time of the last change.
        public var fleetVersion: Int64 { (revokedAtMs != nil ? 1 << 50 : 0) + max(0, updatedAtMs) }

        /// Whether this entry replaces `other` (nil: absent): a larger
        /// version, or the same with a larger text (two machines that
        /// changed a key in the same millisecond settle on one, everywhere).
        /// `FleetScripts.keyPut` decides the same way in Redis.
        public func wins(over other: Entry?) -> Bool {
            guard let other else { return true }
            if fleetVersion != other.fleetVersion { return fleetVersion > other.fleetVersion }
            return other.fleetJSON.utf8.lexicographicallyPrecedes(fleetJSON.utf8) // bytes, as Redis compares
        }

        /// The entry as the fleet's Redis keeps it: every column (the
        /// secret only as its SHA-256), in a fixed order.
        public var fleetJSON: String {
            let int = { (v: Int64?) in v.map { JSON.number(Double($0)) } ?? .null }
            let json: JSON = ["id": .string(id), "name": .string(name), "sha256": .string(sha256), "spec": spec, "expiresAt": int(expiresAtMs),
                              "enabled": .bool(enabled), "revokedAt": int(revokedAtMs), "previousSHA256": previousSHA256.map { .string($0) } ?? .null,
                              "previousUntil": int(previousUntilMs), "createdAt": .number(Double(createdAtMs)), "updatedAt": .number(Double(updatedAtMs))]
            return json.serialized()
        }

        public var state: String {
            if revokedAtMs != nil { return "revoked" }
            if !enabled { return "disabled" }
            if let e = expiresAtMs, e <= Clock.wallMicros() / 1000 { return "expired" }
            return "active"
        }
    }

    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) throws {
        db = database
        try Schema.migrate(db)
    }

    /// A new secret: `kg-` (so secret scanners can find a leaked one) and
    /// 40 characters of base62 from OpenSSL's CSPRNG (~238 bits).
    public static func newSecret() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var out = Array("kg-".utf8)
        while out.count < 43 {
            let bytes = SecureRandom.bytes(64)
            // 248 = 4 × 62: no modulo bias.
            for b in bytes where b < 248 && out.count < 43 { out.append(alphabet[Int(b % 62)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The generation: changes with every write.
    public func generation() throws -> Int64 {
        try db.query("SELECT n FROM client_keys_generation").first?.first?.int ?? 0
    }

    public func all() throws -> [Entry] {
        try db.query("SELECT \(Self.columns) FROM client_keys ORDER BY created_at, id").compactMap(Self.entry)
    }

    public func get(_ id: String) throws -> Entry? {
        try db.query("SELECT \(Self.columns) FROM client_keys WHERE id = ?1", [.text(id)]).first.flatMap(Self.entry)
    }

    /// A new key: its entry and its secret (shown once).
    public func create(name: String, spec: JSON, expiresAtMs: Int64?, nowMs: Int64 = Clock.wallMicros() / 1000) throws -> (Entry, String) {
        let secret = Self.newSecret()
        let entry = Entry(id: "key_" + RequestID.fresh(), name: name, sha256: SHA256.hex(secret), spec: spec, expiresAtMs: expiresAtMs,
                          enabled: true, revokedAtMs: nil, previousSHA256: nil, previousUntilMs: nil, createdAtMs: nowMs, updatedAtMs: nowMs)
        try write { tx in
            try tx.query("INSERT INTO client_keys (id, name, sha256, spec, expires_at, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                         [.text(entry.id), .text(name), .text(entry.sha256), .text(spec.serialized()), expiresAtMs.map { .int($0) } ?? .null, .int(nowMs)])
        }
        return (entry, secret)
    }

    /// Changes a key in one transaction (`change` sees the stored entry);
    /// nil when there is no such key.
    public func update(_ id: String, nowMs: Int64 = Clock.wallMicros() / 1000, _ change: (inout Entry) throws -> Void) throws -> Entry? {
        try write { tx in
            guard var e = try tx.query("SELECT \(Self.columns) FROM client_keys WHERE id = ?1", [.text(id)]).first.flatMap(Self.entry) else { return nil }
            try change(&e)
            e.updatedAtMs = nowMs
            try tx.query("""
                UPDATE client_keys SET name = ?2, sha256 = ?3, spec = ?4, expires_at = ?5, enabled = ?6, revoked_at = ?7,
                    previous_sha256 = ?8, previous_until = ?9, updated_at = ?10 WHERE id = ?1
                """, [.text(id), .text(e.name), .text(e.sha256), .text(e.spec.serialized()), e.expiresAtMs.map { .int($0) } ?? .null,
                      .int(e.enabled ? 1 : 0), e.revokedAtMs.map { .int($0) } ?? .null, e.previousSHA256.map { .text($0) } ?? .null,
                      e.previousUntilMs.map { .int($0) } ?? .null, .int(nowMs)])
            return e
        }
    }

    /// A new secret for the key; the old one authenticates for `graceSeconds` more.
    public func rotate(_ id: String, graceSeconds: Int, nowMs: Int64 = Clock.wallMicros() / 1000) throws -> (Entry, String)? {
        let secret = Self.newSecret()
        let entry = try update(id, nowMs: nowMs) { e in
            e.previousSHA256 = graceSeconds > 0 ? e.sha256 : nil
            e.previousUntilMs = graceSeconds > 0 ? nowMs + Int64(graceSeconds) * 1000 : nil
            e.sha256 = SHA256.hex(secret)
        }
        return entry.map { ($0, secret) }
    }

    /// Revoked at once, for good; kept, so the ledger's rows still name it.
    public func revoke(_ id: String, nowMs: Int64 = Clock.wallMicros() / 1000) throws -> Entry? {
        try update(id, nowMs: nowMs) { e in
            if e.revokedAtMs == nil { e.revokedAtMs = nowMs }
            e.previousSHA256 = nil
            e.previousUntilMs = nil
        }
    }

    private func write<T>(_ body: (SQLiteDatabase.Transaction) throws -> T) throws -> T {
        try SQLiteDatabase.whileBusy {
            try db.transaction { tx in
                let r = try body(tx)
                try tx.query("UPDATE client_keys_generation SET n = n + 1")
                return r
            }
        }
    }

    // MARK: a Redis fleet's keys (`KeyFleetSync`)

    /// Stores entries from the fleet that win over this machine's
    /// (`Entry.wins`), in one transaction; the generation moves only when
    /// something changed. Returns how many did.
    @discardableResult
    public func adopt(_ entries: [Entry]) throws -> Int {
        guard !entries.isEmpty else { return 0 }
        return try SQLiteDatabase.whileBusy {
            try db.transaction { tx in
                var changed = 0
                for e in entries {
                    let local = try tx.query("SELECT \(Self.columns) FROM client_keys WHERE id = ?1", [.text(e.id)]).first.flatMap(Self.entry)
                    guard e.wins(over: local) else { continue }
                    try tx.query("""
                        INSERT OR REPLACE INTO client_keys (id, name, sha256, spec, expires_at, enabled, revoked_at, previous_sha256, previous_until,
                            created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                        """, [.text(e.id), .text(e.name), .text(e.sha256), .text(e.spec.serialized()), e.expiresAtMs.map { .int($0) } ?? .null,
                              .int(e.enabled ? 1 : 0), e.revokedAtMs.map { .int($0) } ?? .null, e.previousSHA256.map { .text($0) } ?? .null,
                              e.previousUntilMs.map { .int($0) } ?? .null, .int(e.createdAtMs), .int(e.updatedAtMs)])
                    changed += 1
                }
                if changed > 0 { try tx.query("UPDATE client_keys_generation SET n = n + 1") }
                return changed
            }
        }
    }

    /// What each side lacks: the remote entries that win over this
    /// machine's (to adopt), and this machine's that win over the remote
    /// ones or that it lacks (to publish).
    public static func reconcile(local: [Entry], remote: [Entry]) -> (toLocal: [Entry], toRemote: [Entry]) {
        let l = Dictionary(local.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let r = Dictionary(remote.map { ($0.id, $0) }, uniquingKeysWith: { a, b in a.wins(over: b) ? a : b })
        return (r.values.filter { $0.wins(over: l[$0.id]) }.sorted { $0.id < $1.id },
                local.filter { $0.wins(over: r[$0.id]) })
    }

    static let columns = "id, name, sha256, spec, expires_at, enabled, revoked_at, previous_sha256, previous_until, created_at, updated_at"

    static func entry(_ row: [SQLiteDatabase.Value]) -> Entry? {
        guard row.count == 11, let id = row[0].text, let name = row[1].text, let sha = row[2].text, let specText = row[3].text,
              let spec = try? JSON.parse(Array(specText.utf8)), let created = row[9].int, let updated = row[10].int else { return nil }
        return Entry(id: id, name: name, sha256: sha, spec: spec, expiresAtMs: row[4].int, enabled: row[5].int == 1, revokedAtMs: row[6].int,
                     previousSHA256: row[7].text, previousUntilMs: row[8].int, createdAtMs: created, updatedAtMs: updated)
    }
}

extension KeyStore.Entry {
    /// An entry back from `fleetJSON`; nil for anything else.
    public init?(fleetJSON text: String) {
        guard let j = try? JSON.parse(Array(text.utf8)), let id = j["id"]?.stringValue, let name = j["name"]?.stringValue,
              let sha = j["sha256"]?.stringValue, sha.utf8.count == 64, let spec = j["spec"], spec.objectValue != nil,
              let created = j["createdAt"]?.intValue, let updated = j["updatedAt"]?.intValue else { return nil }
        let int = { (k: String) in j[k]?.intValue.map(Int64.init) }
        self.init(id: id, name: name, sha256: sha, spec: spec, expiresAtMs: int("expiresAt"), enabled: j["enabled"]?.boolValue ?? true,
                  revokedAtMs: int("revokedAt"), previousSHA256: j["previousSHA256"]?.stringValue, previousUntilMs: int("previousUntil"),
                  createdAtMs: Int64(created), updatedAtMs: Int64(updated))
    }
}
