import CSQLite
import Glibc
import KimiCore

/// One SQLite database shared by every process of the gateway on a machine
/// (file ownership now; the usage ledger next). WAL mode: readers never
/// wait for the writer, and one writer at a time waits up to
/// `busyTimeoutMs` for another process's transaction. One connection per
/// process, used under a lock: the gateway's writes are a few per upload or
/// request, and a connection per worker thread (up to 512) would cost more
/// than it saves.
public final class SQLiteDatabase: @unchecked Sendable {
    public enum Value: Equatable, Sendable {
        case null
        case int(Int64)
        case text(String)

        public var int: Int64? { if case let .int(v) = self { return v }; return nil }
        public var text: String? { if case let .text(v) = self { return v }; return nil }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
        /// Another connection holds the lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
        public var isBusy: Bool { description.contains("locked") || description.contains("busy") }
    }

    public let path: String
    private var db: OpaquePointer?
    private let lock = Lock()
    private var statements: [String: OpaquePointer] = [:]

    /// SQLite's process-wide settings, made once before its first use
    /// (SQLITE_MISUSE after that, harmless): no malloc statistics, whose
    /// global mutex and counters wrapped each of the ~9 allocations a
    /// ledger row makes (callgrind).
    private static let configured: Int32 = kimi_sqlite_configure_once()

    /// Opens (creating) the database: WAL, `synchronous=NORMAL` (durable
    /// across a process crash; a power cut may lose the last transactions),
    /// a busy timeout, and a private mode for a file it creates.
    public init(path: String, busyTimeoutMs: Int32 = 5_000) throws {
        self.path = path
        _ = Self.configured
        let previous = umask(0o077)
        defer { umask(previous) }
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw Failure(description: "cannot open \(path): \(message)")
        }
        db = handle
        sqlite3_busy_timeout(handle, busyTimeoutMs)
        // WAL is a property of the file, set once by whichever process gets
        // there first. Switching needs a lock that the busy handler does not
        // always wait for (seen: two workers starting together, one got
        // "database is locked"), so it is retried; reading the mode needs none.
        try Self.whileBusy { [self] in
            if try query("PRAGMA journal_mode").first?.first?.text?.lowercased() != "wal" {
                try execute("PRAGMA journal_mode=WAL")
            }
        }
        try execute("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
    }

    /// Runs `body` again while SQLite answers busy or locked, up to `seconds`.
    public static func whileBusy<T>(seconds: Int = 15, _ body: () throws -> T) throws -> T {
        let deadline = Clock.monotonicNanos() &+ UInt64(seconds) * 1_000_000_000
        while true {
            do { return try body() } catch let e as Failure where e.isBusy && Clock.monotonicNanos() < deadline {
                usleep(50_000)
            }
        }
    }

    deinit {
        for (_, s) in statements { sqlite3_finalize(s) }
        sqlite3_close(db)
    }

    /// Statements without parameters or results (schema, pragmas).
    public func execute(_ sql: String) throws {
        try lock.withLock {
            var error: UnsafeMutablePointer<CChar>?
            guard sqlite3_exec(db, sql, nil, nil, &error) == SQLITE_OK else {
                let message = error.map { String(cString: $0) } ?? "error"
                sqlite3_free(error)
                throw Failure(description: message)
            }
        }
    }

    /// Runs one statement with `parameters` (bound `?1`, `?2`, …) and
    /// returns its rows. Statements are prepared once and cached.
    @discardableResult
    public func query(_ sql: String, _ parameters: [Value] = []) throws -> [[Value]] {
        try lock.withLock { try unlockedQuery(sql, parameters) }
    }

    /// Several statements as one transaction (`BEGIN IMMEDIATE`: the write
    /// lock is taken up front, so two processes never deadlock upgrading).
    public func transaction<T>(_ body: (Transaction) throws -> T) throws -> T {
        try lock.withLock {
            try unlockedExec("BEGIN IMMEDIATE")
            do {
                let result = try body(Transaction(database: self))
                try unlockedExec("COMMIT")
                return result
            } catch {
                try? unlockedExec("ROLLBACK")
                throw error
            }
        }
    }

    public struct Transaction {
        let database: SQLiteDatabase
        @discardableResult
        public func query(_ sql: String, _ parameters: [Value] = []) throws -> [[Value]] {
            try database.unlockedQuery(sql, parameters)
        }
        /// Rows changed by the last statement.
        public var changes: Int { database.changes }
        /// A statement to run many times in this transaction, bound field by
        /// field: no `[Value]` per row, no lookup of the SQL text per row,
        /// strings bound from their UTF-8 storage (the ledger's drain).
        public func statement(_ sql: String) throws -> Statement {
            Statement(stmt: try database.prepared(sql), database: database)
        }
    }

    /// A prepared statement inside a transaction (see `Transaction.statement`).
    public struct Statement {
        let stmt: OpaquePointer
        let database: SQLiteDatabase
        private static let empty: StaticString = ""

        public func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(stmt, i, v) }
        public func bind(_ i: Int32, _ v: Int?) {
            if let v { sqlite3_bind_int64(stmt, i, Int64(v)) } else { sqlite3_bind_null(stmt, i) }
        }
        public func bind(_ i: Int32, _ s: String) {
            var s = s
            s.withUTF8 { b in
                // An empty buffer may have no address, and a NULL pointer binds NULL, not ''.
                let p = b.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(Self.empty.utf8Start)
                _ = kimi_sqlite_bind_text(stmt, i, p.assumingMemoryBound(to: CChar.self), Int32(b.count))
            }
        }
        /// Bytes SQLite reads where they are, until they are bound again or
        /// `clearBindings` (the caller keeps them alive until then).
        public func bindInPlace(_ i: Int32, _ b: UnsafeBufferPointer<UInt8>) {
            let p = b.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(Self.empty.utf8Start)
            _ = kimi_sqlite_bind_text_static(stmt, i, p.assumingMemoryBound(to: CChar.self), Int32(b.count))
        }
        public func bind(_ i: Int32, _ bytes: [UInt8]) {
            bytes.withUnsafeBufferPointer { b in
                let p = b.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(Self.empty.utf8Start)
                _ = kimi_sqlite_bind_text(stmt, i, p.assumingMemoryBound(to: CChar.self), Int32(b.count))
            }
        }
        public func clearBindings() { sqlite3_clear_bindings(stmt) }
        /// Runs the statement with the bound values; returns the rows it changed.
        @discardableResult
        public func run() throws -> Int {
            defer { sqlite3_reset(stmt) }
            guard sqlite3_step(stmt) == SQLITE_DONE else { throw database.failure() }
            return database.changes
        }
    }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(db)) }

    private func unlockedExec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw failure() }
    }

    fileprivate func unlockedQuery(_ sql: String, _ parameters: [Value]) throws -> [[Value]] {
        let stmt = try prepared(sql)
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        for (i, p) in parameters.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32 = switch p {
            case .null: sqlite3_bind_null(stmt, index)
            case let .int(v): sqlite3_bind_int64(stmt, index, v)
            case let .text(s): kimi_sqlite_bind_text(stmt, index, s, -1)
            }
            guard rc == SQLITE_OK else { throw failure() }
        }
        var rows: [[Value]] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw failure() }
            rows.append((0..<sqlite3_column_count(stmt)).map { c in
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: .int(sqlite3_column_int64(stmt, c))
                case SQLITE_NULL: .null
                default: .text(String(cString: sqlite3_column_text(stmt, c)))
                }
            })
        }
        return rows
    }

    fileprivate func prepared(_ sql: String) throws -> OpaquePointer {
        if let s = statements[sql] { return s }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil) == SQLITE_OK, let stmt else { throw failure() }
        statements[sql] = stmt
        return stmt
    }

    fileprivate func failure() -> Failure { Failure(description: String(cString: sqlite3_errmsg(db))) }
}
