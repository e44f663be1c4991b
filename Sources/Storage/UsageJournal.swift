import Glibc
import KimiCore

/// Each process's append-only journal of usage records (issue #12): the
/// request path appends one line (one `write` on an O_APPEND file, no
/// SQLite), and `drain` moves complete lines into the ledger in one
/// transaction, then trims what was stored. A process killed before its
/// journal was drained leaves the file behind; the next process to start
/// replays it (`replayLeftovers`) — exactly once, because the ledger
/// ignores a record id it already holds.
///
/// Files: `journal-<pid>-<start>.log`, where `<start>` is the process's
/// start time in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
/// reused pid is never mistaken for a live writer.
public final class UsageJournal: @unchecked Sendable {
    public let directory: String
    public let path: String
    private let fd: Int32
    private let lock = Lock()
    /// Bytes at the start of the file already stored in the ledger.
    private var consumed = 0

    public init(directory: String) throws {
        self.directory = directory
        guard SharedFiles.ensureParent(of: directory + "/x") else {
            throw SQLiteDatabase.Failure(description: "cannot create \(directory)")
        }
        path = directory + "/journal-\(getpid())-\(Self.startTime(of: getpid()) ?? 0).log"
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteDatabase.Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Appends one record; false when the write failed (logged by the caller).
    public func append(_ record: UsageRecord) -> Bool {
        let line = record.journalLine
        return lock.withLock { line.withUnsafeBytes { FileIO.writeAll(fd, $0) } }
    }

    /// Moves this process's complete records into the ledger and trims the
    /// journal when everything in it is stored. Returns the records stored.
    @discardableResult
    public func drain(into ledger: UsageLedger) throws -> Int { try drainRecords(into: ledger).count }

    /// As `drain`, returning the records themselves (the usage book subtracts them from its pending counts).
    public func drainRecords(into ledger: UsageLedger) throws -> [UsageRecord] {
        let start = lock.withLock { consumed }
        guard let bytes = Self.read(path, from: start) else { return [] }
        let (records, used, _) = JournalLines.records(in: bytes[...])
        guard used > 0 else { return [] }
        try ledger.insert(records)
        lock.withLock {
            consumed = start + used
            // Only when no line came in meanwhile: appends share this lock.
            var st = stat()
            if fstat(fd, &st) == 0, Int(st.st_size) == consumed {
                _ = ftruncate(fd, 0)
                consumed = 0
            }
        }
        return records
    }

    /// Journals of processes that are gone: stored, then removed. Returns
    /// the records stored (a record already in the ledger counts once).
    @discardableResult
    public func replayLeftovers(into ledger: UsageLedger) throws -> Int {
        guard let dir = opendir(directory) else { return 0 }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("journal-"), name.hasSuffix(".log"), directory + "/" + name != path { names.append(name) }
        }
        closedir(dir)
        var stored = 0
        for name in names {
            let parts = name.dropFirst("journal-".count).dropLast(".log".count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), let start = Int(parts[1]) else { continue }
            if let live = Self.startTime(of: pid), live == start { continue } // its writer is alive
            let file = directory + "/" + name
            guard let bytes = Self.read(file, from: 0) else { continue }
            let (records, _, _) = JournalLines.records(in: bytes[...])
            stored += try ledger.insert(records)
            unlink(file)
        }
        return stored
    }

    static func read(_ path: String, from offset: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) > offset else { return [] }
        var out = [UInt8](repeating: 0, count: Int(st.st_size) - offset)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n >= 0 else { return nil }
        return Array(out.prefix(n))
    }

    /// A process's start time in clock ticks since boot, nil when it is gone.
    static func startTime(of pid: Int32) -> Int? {
        guard let bytes = FileIO.read("/proc/\(pid)/stat", limit: 4096) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        // Fields after the command name, which is in parentheses and may hold spaces.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? Int(fields[19]) : nil // field 22 overall
    }
}
