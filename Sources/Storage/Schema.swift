/// The gateway database's schema, as numbered migrations (`PRAGMA
/// user_version` says how many have run). Every process runs `migrate` at
/// start; the check and the steps share one `BEGIN IMMEDIATE` transaction,
/// so two processes starting together apply each step once.
public enum Schema {
    static let migrations: [String] = [
        // 1: who uploaded which upstream file (issue #11: one upstream
        // account serves every client; a key sees only its own files).
        """
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            filename TEXT NOT NULL DEFAULT '',
            bytes INTEGER NOT NULL DEFAULT 0,
            purpose TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL
        );
        CREATE INDEX files_owner ON files(owner);
        """,
    ]

    public static var version: Int { migrations.count }

    public static func migrate(_ db: SQLiteDatabase) throws {
        try db.transaction { tx in
            let current = Int(try tx.query("PRAGMA user_version").first?.first?.int ?? 0)
            guard current < migrations.count else { return }
            for step in migrations[current...] {
                for statement in step.split(separator: ";") where !statement.allSatisfy({ $0.isWhitespace }) {
                    try tx.query(String(statement))
                }
            }
            try tx.query("PRAGMA user_version = \(migrations.count)")
        }
    }
}
