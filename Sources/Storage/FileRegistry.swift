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
}

/// Who owns what a request uploads: the key's hash, or one owner for
/// everyone when auth is off (with no key to tell clients apart, every
/// client is the same owner, as the issue asks).
public enum FileOwner {
    public static let open = "open"
    public static func of(key: GatewayConfig.APIKey?, authRequired: Bool) -> String {
        guard authRequired, let key else { return open }
        return "key:" + key.sha256
    }
}
