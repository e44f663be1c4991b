import Glibc
import KimiCore

/// Which gateway client uploaded which upstream file (OWASP API1, broken
/// object-level authorization: every client shares one Kimi account, so
/// the upstream would show anyone's file to anyone). Owners are opaque
/// strings from `FileOwner`.
public final class FileRegistry: @unchecked Sendable {
    public struct Record: Equatable, Sendable {
        public var id: String
        public var owner: String
        public var filename: String
        public var bytes: Int
        public var purpose: String
        public init(id: String, owner: String, filename: String, bytes: Int, purpose: String) {
            (self.id, self.owner, self.filename, self.bytes, self.purpose) = (id, owner, filename, bytes, purpose)
        }
    }

    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) throws {
        db = database
        try Schema.migrate(db)
        try sweepPlaceholders()
    }

    public func record(_ r: Record, now: Int = Clock.unixSeconds()) throws {
        try db.query("INSERT OR REPLACE INTO files (id, owner, filename, bytes, purpose, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                     [.text(r.id), .text(r.owner), .text(r.filename), .int(Int64(r.bytes)), .text(r.purpose), .int(Int64(now))])
    }

    public func owner(of id: String) throws -> String? {
        try db.query("SELECT owner FROM files WHERE id = ?1", [.text(id)]).first?.first?.text
    }

    /// The ids `owner` uploaded.
    public func ids(ownedBy owner: String) throws -> Set<String> {
        Set(try db.query("SELECT id FROM files WHERE owner = ?1", [.text(owner)]).compactMap { $0.first?.text })
    }

    /// Every id the gateway knows, for admins' view of the upstream list.
    public func allIDs() throws -> Set<String> {
        Set(try db.query("SELECT id FROM files").compactMap { $0.first?.text })
    }

    public func remove(_ id: String) throws {
        try db.query("DELETE FROM files WHERE id = ?1", [.text(id)])
    }

    // MARK: per-key quota

    /// What an owner may keep upstream; 0 is no limit.
    public struct Quota: Sendable, Equatable {
        public var maxFiles: Int
        public var maxBytes: Int
        public init(maxFiles: Int, maxBytes: Int) { (self.maxFiles, self.maxBytes) = (maxFiles, maxBytes) }
    }

    public enum Admission: Equatable, Sendable {
        /// Counted: settle it with `settleUpload` whatever happens.
        case admitted(placeholder: String)
        case tooManyFiles(have: Int, max: Int)
        case tooManyBytes(have: Int, adding: Int, max: Int)
    }

    /// Counts an upload of up to `bytes` against `owner`'s quota before it
    /// goes upstream, as a placeholder row in the same transaction as the
    /// check, so concurrent uploads of one key in any process of the
    /// machine never pass the quota together. The placeholder names its
    /// writer (pid and start time): one a killed process left is swept by
    /// the next process that opens the registry.
    public func reserveUpload(owner: String, bytes: Int, quota: Quota, now: Int = Clock.unixSeconds()) throws -> Admission {
        let placeholder = Self.placeholderPrefix + "\(getpid())-\(UsageJournal.startTime(of: getpid()) ?? 0)-\(RequestID.fresh())"
        return try SQLiteDatabase.whileBusy {
            try db.transaction { tx in
                let row = try tx.query("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files WHERE owner = ?1", [.text(owner)]).first
                let files = Int(row?.first?.int ?? 0)
                let used = Int(row.flatMap { $0.count > 1 ? $0[1].int : nil } ?? 0)
                if quota.maxFiles > 0, files >= quota.maxFiles { return .tooManyFiles(have: files, max: quota.maxFiles) }
                if quota.maxBytes > 0, used.addingSaturated(bytes) > quota.maxBytes {
                    return .tooManyBytes(have: used, adding: bytes, max: quota.maxBytes)
                }
                try tx.query("INSERT INTO files (id, owner, filename, bytes, purpose, created_at) VALUES (?1, ?2, '', ?3, 'pending', ?4)",
                             [.text(placeholder), .text(owner), .int(Int64(bytes)), .int(Int64(now))])
                return .admitted(placeholder: placeholder)
            }
        }
    }

    /// Replaces the placeholder by the file the upstream made (nil: the
    /// upload failed; the placeholder just goes), in one transaction.
    public func settleUpload(placeholder: String, file: Record?, now: Int = Clock.unixSeconds()) throws {
        try SQLiteDatabase.whileBusy {
            try db.transaction { tx in
                try tx.query("DELETE FROM files WHERE id = ?1 AND purpose = 'pending'", [.text(placeholder)])
                if let r = file {
                    try tx.query("INSERT OR REPLACE INTO files (id, owner, filename, bytes, purpose, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                 [.text(r.id), .text(r.owner), .text(r.filename), .int(Int64(r.bytes)), .text(r.purpose), .int(Int64(now))])
                }
            }
        }
    }

    /// What `owner` keeps: files and bytes (placeholders of uploads in flight included).
    public func usage(of owner: String) throws -> (files: Int, bytes: Int) {
        let row = try db.query("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM files WHERE owner = ?1", [.text(owner)]).first
        return (Int(row?.first?.int ?? 0), Int(row.flatMap { $0.count > 1 ? $0[1].int : nil } ?? 0))
    }

    static let placeholderPrefix = "pending-"

    /// Removes placeholders whose writer is gone. Returns how many.
    @discardableResult
    public func sweepPlaceholders() throws -> Int {
        let rows = try db.query("SELECT id FROM files WHERE purpose = 'pending'")
        var gone = 0
        for id in rows.compactMap({ $0.first?.text }) {
            let parts = id.dropFirst(Self.placeholderPrefix.count).split(separator: "-")
            guard parts.count >= 3, let pid = Int32(parts[0]), let start = Int(parts[1]) else { continue }
            if UsageJournal.startTime(of: pid) != start {
                try db.query("DELETE FROM files WHERE id = ?1 AND purpose = 'pending'", [.text(id)])
                gone += 1
            }
        }
        return gone
    }

    // MARK: who asked about which document

    /// Notes that `owner` asked about the cached document `key`; true when
    /// it had asked before (what `cached` tells it).
    public func noteDocumentAsked(_ key: String, by owner: String, now: Int = Clock.unixSeconds()) throws -> Bool {
        try SQLiteDatabase.whileBusy {
            try db.transaction { tx in
                try tx.query("INSERT OR IGNORE INTO documents_asked (cache_key, owner, at) VALUES (?1, ?2, ?3)",
                             [.text(key), .text(owner), .int(Int64(now))])
                return tx.changes == 0
            }
        }
    }
}

/// Who owns what a request uploads: the key's hash, or one owner for
/// everyone when auth is off (with no key to tell clients apart, every
/// client is the same owner).
public enum FileOwner {
    public static let open = "open"
    public static func of(key: GatewayConfig.APIKey?, authRequired: Bool) -> String {
        guard authRequired, let key else { return open }
        return "key:" + key.sha256
    }
}
