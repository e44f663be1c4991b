import Glibc
import Testing
@testable import KimiCore
@testable import Storage

@Suite struct FileRegistryTests {
    static func freshPath() -> String {
        var template = Array("/tmp/kimi-storage-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!) + "/gateway.db"
    }

    @Test func recordsOwnersAndForgetsDeletedFiles() throws {
        let registry = try FileRegistry(database: try SQLiteDatabase(path: Self.freshPath()))
        try registry.record(.init(id: "file-a", owner: "key:a", filename: "a.pdf", bytes: 10, purpose: "file-extract"))
        try registry.record(.init(id: "file-b", owner: "key:b", filename: "b.txt", bytes: 20, purpose: "file-extract"))
        #expect(try registry.owner(of: "file-a") == "key:a")
        #expect(try registry.owner(of: "nope") == nil)
        #expect(try registry.ids(ownedBy: "key:b") == ["file-b"])
        #expect(try registry.allIDs() == ["file-a", "file-b"])
        try registry.remove("file-a")
        #expect(try registry.owner(of: "file-a") == nil)
    }

    @Test func theDatabaseIsWALPrivateAndMigratedOnce() throws {
        let path = Self.freshPath()
        let first = try SQLiteDatabase(path: path)
        _ = try FileRegistry(database: first)
        let second = try SQLiteDatabase(path: path) // another process's connection
        _ = try FileRegistry(database: second)
        #expect(try first.query("PRAGMA journal_mode").first?.first == .text("wal"))
        #expect(try first.query("PRAGMA user_version").first?.first == .int(Int64(Schema.version)))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o077 == 0)
        // What one connection writes, the other reads at once.
        try FileRegistry(database: first).record(.init(id: "x", owner: "open", filename: "", bytes: 0, purpose: ""))
        #expect(try FileRegistry(database: second).owner(of: "x") == "open")
    }

    @Test func parametersAreBoundNeverSpliced() throws {
        let registry = try FileRegistry(database: try SQLiteDatabase(path: Self.freshPath()))
        let hostile = "x'); DROP TABLE files; --"
        try registry.record(.init(id: hostile, owner: "o", filename: "it's.txt", bytes: 1, purpose: ""))
        #expect(try registry.owner(of: hostile) == "o")
        #expect(try registry.allIDs() == [hostile])
    }

    @Test func aFailedTransactionLeavesNothing() throws {
        let db = try SQLiteDatabase(path: Self.freshPath())
        let registry = try FileRegistry(database: db)
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try db.transaction { tx in
                try tx.query("INSERT INTO files (id, owner, created_at) VALUES ('t', 'o', 0)")
                throw Stop()
            }
        }
        #expect(try registry.owner(of: "t") == nil)
    }

    @Test func ownersAreTheKeyWhenAuthIsRequiredElseOneForEveryone() {
        let key = GatewayConfig.APIKey(sha256: "ab", name: "k")
        #expect(FileOwner.of(key: key, authRequired: true) == "key:ab")
        #expect(FileOwner.of(key: nil, authRequired: false) == FileOwner.open)
        #expect(FileOwner.of(key: key, authRequired: false) == FileOwner.open)
    }
}
