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

    // MARK: per-key quota (issue #29)

    @Test func anUploadIsCountedBeforeItGoesUpstreamAndTheQuotaHoldsFilesAndBytes() throws {
        let registry = try FileRegistry(database: try SQLiteDatabase(path: Self.freshPath()))
        let quota = FileRegistry.Quota(maxFiles: 2, maxBytes: 1000)
        guard case let .admitted(first) = try registry.reserveUpload(owner: "key:a", bytes: 400, quota: quota) else { Issue.record("refused"); return }
        // The placeholder counts while the upload is in flight.
        #expect(try registry.usage(of: "key:a") == (1, 400) as (Int, Int))
        #expect(try registry.reserveUpload(owner: "key:a", bytes: 700, quota: quota) == .tooManyBytes(have: 400, adding: 700, max: 1000))
        try registry.settleUpload(placeholder: first, file: .init(id: "f1", owner: "key:a", filename: "a", bytes: 380, purpose: "file-extract"))
        #expect(try registry.usage(of: "key:a") == (1, 380) as (Int, Int)) // the upstream's size replaces the body's
        guard case let .admitted(second) = try registry.reserveUpload(owner: "key:a", bytes: 600, quota: quota) else { Issue.record("refused"); return }
        #expect(try registry.reserveUpload(owner: "key:a", bytes: 1, quota: quota) == .tooManyFiles(have: 2, max: 2))
        // Another owner has its own quota.
        #expect(try registry.reserveUpload(owner: "key:b", bytes: 1, quota: quota) != .tooManyFiles(have: 2, max: 2))
        // A failed upload gives its place back.
        try registry.settleUpload(placeholder: second, file: nil)
        #expect(try registry.usage(of: "key:a") == (1, 380) as (Int, Int))
        // Deleting a file gives room back; 0 is no limit.
        try registry.remove("f1")
        #expect(try registry.usage(of: "key:a") == (0, 0) as (Int, Int))
        if case .admitted = try registry.reserveUpload(owner: "key:a", bytes: 1 << 40, quota: .init(maxFiles: 0, maxBytes: 0)) {} else { Issue.record("0 limits") }
    }

    @Test func concurrentUploadsOfOneKeyInTwoConnectionsNeverPassTheQuotaTogether() throws {
        let path = Self.freshPath()
        let registries = [try FileRegistry(database: try SQLiteDatabase(path: path)), try FileRegistry(database: try SQLiteDatabase(path: path))]
        let admitted = Locked(0)
        final class Box: @unchecked Sendable { let r: FileRegistry; let admitted: Locked<Int>; init(_ r: FileRegistry, _ a: Locked<Int>) { self.r = r; admitted = a } }
        var threads: [pthread_t] = []
        for i in 0..<8 {
            var t = pthread_t()
            pthread_create(&t, nil, { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                for _ in 0..<5 {
                    if case .admitted = try? box.r.reserveUpload(owner: "key:a", bytes: 10, quota: .init(maxFiles: 7, maxBytes: 0)) {
                        box.admitted.update { $0 += 1 }
                    }
                }
                return nil
            }, Unmanaged.passRetained(Box(registries[i % 2], admitted)).toOpaque())
            threads.append(t)
        }
        for t in threads { pthread_join(t, nil) }
        #expect(admitted.get() == 7)
        #expect(try registries[0].usage(of: "key:a").files == 7)
    }

    @Test func aPlaceholderWhoseWriterIsGoneIsSweptWhenTheRegistryOpens() throws {
        let path = Self.freshPath()
        let db = try SQLiteDatabase(path: path)
        let registry = try FileRegistry(database: db)
        guard case .admitted = try registry.reserveUpload(owner: "key:a", bytes: 5, quota: .init(maxFiles: 1, maxBytes: 0)) else { Issue.record("refused"); return }
        // A killed process's placeholder: a pid that is not running.
        try db.query("INSERT INTO files (id, owner, bytes, purpose, created_at) VALUES ('pending-999999999-1-x', 'key:a', 5, 'pending', 0)")
        #expect(try registry.usage(of: "key:a").files == 2)
        _ = try FileRegistry(database: try SQLiteDatabase(path: path)) // the next process
        #expect(try registry.usage(of: "key:a") == (1, 5) as (Int, Int)) // our own (live) placeholder stays
    }

    @Test func documentQuestionsAreNotedPerOwner() throws {
        let registry = try FileRegistry(database: try SQLiteDatabase(path: Self.freshPath()))
        #expect(try registry.noteDocumentAsked("abc-txt", by: "key:a") == false)
        #expect(try registry.noteDocumentAsked("abc-txt", by: "key:a") == true)
        #expect(try registry.noteDocumentAsked("abc-txt", by: "key:b") == false)
        #expect(try registry.noteDocumentAsked("abc-pdf", by: "key:a") == false)
    }
}
