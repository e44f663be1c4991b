import Glibc
import KimiCore

/// Each process's journal of usage records (issue #12): the request path
/// copies one line into a shared memory mapping of the file (no syscall, no
/// SQLite), and `drain` moves complete lines into the ledger in one
/// transaction, then clears what was stored. A process killed before its
/// journal was drained leaves the file behind — the kernel keeps every
/// byte written to a `MAP_SHARED` mapping, exactly as it keeps a `write()`
/// (neither survives a power cut without fsync) — and the next process to
/// start replays it (`replayLeftovers`) exactly once: a replayed record
/// the ledger already holds (same time and id) is skipped.
///
/// Why a mapping: one `write()` per request was 8 % of the gateway's CPU
/// on a relayed completion (perf, bench scenario 2b); a copy under a lock
/// is a few hundred nanoseconds.
///
/// Layout: lines from offset 0, then zeros. The file starts at 1 MiB and
/// doubles while records wait (a database that is down), up to 1 GiB;
/// after a drain that stored everything the used bytes are zeroed and
/// writing starts again at 0. A reader of a dead process's file takes the
/// bytes before the first zero; a torn last line (killed mid-copy) has no
/// newline and is ignored.
///
/// Files: `journal-<pid>-<start>.log`, where `<start>` is the process's
/// start time in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
/// reused pid is never mistaken for a live writer.
public final class UsageJournal: @unchecked Sendable {
    public let directory: String
    public let path: String
    private let fd: Int32
    private let lock = Lock()
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    /// Bytes written.
    private var length = 0
    /// Bytes at the start already stored in the ledger.
    private var consumed = 0
    static let initialBytes = 1 << 20
    static let maxBytes = 1 << 30

    public init(directory: String) throws {
        self.directory = directory
        guard SharedFiles.ensureParent(of: directory + "/x") else {
            throw SQLiteDatabase.Failure(description: "cannot create \(directory)")
        }
        path = directory + "/journal-\(getpid())-\(Self.startTime(of: getpid()) ?? 0).log"
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteDatabase.Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        capacity = Self.initialBytes
        guard let m = Self.map(fd, capacity) else {
            let why = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw SQLiteDatabase.Failure(description: "cannot map \(path): \(why)")
        }
        base = m
    }

    deinit {
        munmap(base, capacity)
        close(fd)
    }

    /// Sizes the file (fallocate: a full disk fails here, not with SIGBUS
    /// on a later copy) and maps it shared.
    private static func map(_ fd: Int32, _ bytes: Int) -> UnsafeMutableRawPointer? {
        guard posix_fallocate(fd, 0, off_t(bytes)) == 0 || ftruncate(fd, off_t(bytes)) == 0 else { return nil }
        let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        return m == MAP_FAILED ? nil : m
    }

    /// Appends one record; false when the journal cannot take it (logged by the caller).
    public func append(_ record: UsageRecord) -> Bool {
        let line = record.journalLine
        return lock.withLock {
            if length + line.count > capacity {
                guard grow(toFit: length + line.count) else { return false }
            }
            line.withUnsafeBytes { (base + length).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            length += line.count
            return true
        }
    }

    /// Doubles the mapping (under the lock: every access to it is).
    private func grow(toFit needed: Int) -> Bool {
        var bigger = capacity
        while bigger < needed { bigger *= 2 }
        guard bigger <= Self.maxBytes, let m = Self.map(fd, bigger) else {
            errno = ENOSPC
            return false
        }
        munmap(base, capacity)
        (base, capacity) = (m, bigger)
        return true
    }

    /// Moves this process's complete records into the ledger and clears the
    /// journal when everything in it is stored. Returns the records stored.
    @discardableResult
    public func drain(into ledger: UsageLedger) throws -> Int { try drainRecords(into: ledger).rows }

    /// As `drain`, returning what the usage book needs of each stored row
    /// of a key (it subtracts them from its pending counts).
    public func drainRecords(into ledger: UsageLedger) throws -> (rows: Int, ofKeys: [UsageBook.Stored]) {
        let (start, bytes): (Int, [UInt8]) = lock.withLock {
            (consumed, Array(UnsafeRawBufferPointer(start: base + consumed, count: length - consumed)))
        }
        let (rows, stored, used): (Int, [UsageBook.Stored], Int) = try bytes.withUnsafeBufferPointer { buf in
            let (lines, used, _) = JournalLines.fields(in: buf)
            guard used > 0 else { return (0, [], 0) }
            try ledger.insert(lines)
            return (lines.count, lines.compactMap(UsageBook.Stored.init), used)
        }
        guard used > 0 else { return (0, []) }
        lock.withLock {
            consumed = start + used
            // Only when no line came in meanwhile: appends share this lock.
            if consumed == length {
                memset(base, 0, length)
                (length, consumed) = (0, 0)
            }
        }
        return (rows, stored)
    }

    /// Removes this process's journal when nothing is left in it (a clean
    /// stop, after the last drain); otherwise it stays for the next start.
    public func closeIfEmpty() {
        lock.withLock { if length == 0 { unlink(path) } }
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
            // A mapped journal is its lines, then zeros.
            let (records, _, _) = JournalLines.records(in: bytes[..<(bytes.firstIndex(of: 0) ?? bytes.count)])
            stored += try ledger.insert(records, replayed: true)
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
