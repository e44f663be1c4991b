import Glibc
import KimiCore

/// Each process's journal of usage records: the request path
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
/// Layout: lines from offset 0, each followed by a zero byte that the next
/// line overwrites, so the first zero always ends what was written. The
/// file starts at 1 MiB and doubles while records wait (a database that is
/// down), up to 1 GiB, under a mapping of the whole 1 GiB made once (the
/// address never moves); after a drain that stored everything, a zero at
/// offset 0 empties it and writing starts again at 0. A reader of a dead
/// process's file takes the bytes before the first zero; a torn last line
/// (killed mid-copy) has no newline and is ignored.
///
/// The drain reads the lines it stores straight from the mapping, outside
/// the lock (appends only ever write past them): the lock is held for a
/// copy of one line or an exchange of two offsets, never longer. The drain
/// thread runs at nice 10, and when it held the lock for its copy of every
/// waiting line (an allocation growing its heap with mprotect calls,
/// preempted by busier threads) every request thread waited behind it: a
/// futex wait of ~97 ms in 30 threads at once (strace -T, 32 connections),
/// the p99 of the whole gateway.
///
/// Files: `journal-<pid>-<start>.log`, where `<start>` is the process's
/// start time in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
/// reused pid is never mistaken for a live writer; beside it
/// `journal-<pid>-<start>.inflight`, the provisional rows of the requests
/// in flight (`InFlightSlots`).
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
    private let inFlight: InFlightSlots

    public init(directory: String) throws {
        self.directory = directory
        guard SharedFiles.ensureParent(of: directory + "/x") else {
            throw SQLiteDatabase.Failure(description: "cannot create \(directory)")
        }
        let stem = directory + "/journal-\(getpid())-\(Self.startTime(of: getpid()) ?? 0)"
        path = stem + ".log"
        inFlight = try InFlightSlots(path: stem + ".inflight")
        capacity = Self.initialBytes
        do { (fd, base) = try MappedJournalFile.create(path, bytes: capacity, reserve: Self.maxBytes) } catch {
            inFlight.remove()
            throw error
        }
    }

    deinit {
        munmap(base, Self.maxBytes)
        close(fd)
    }

    /// Writes a request's provisional row, at admission (`InFlightSlots`):
    /// the ticket to hand to `append` with its final row; nil when no slot
    /// could be had (the final row is still written at the end).
    public func begin(_ provisional: UsageRecord) -> Int? { inFlight.put(provisional.journalLine) }

    /// Appends one record, then clears the provisional row `ticket` (the
    /// final row is in the journal first: a kill in between leaves both,
    /// and the replay keeps the final). False when the journal cannot take
    /// it (logged by the caller; the provisional row then stays).
    public func append(_ record: UsageRecord, ticket: Int?) -> Bool {
        guard append(record) else { return false }
        if let ticket { inFlight.clear(ticket) }
        return true
    }

    /// Appends one record; false when the journal cannot take it (logged by the caller).
    public func append(_ record: UsageRecord) -> Bool {
        let line = record.journalLine
        return lock.withLock {
            // The line and the zero after it.
            if length + line.count + 1 > capacity {
                guard grow(toFit: length + line.count + 1) else { return false }
            }
            line.withUnsafeBytes { (base + length).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            length += line.count
            base.storeBytes(of: 0, toByteOffset: length, as: UInt8.self)
            return true
        }
    }

    /// Doubles the file under the mapping (under the lock, as every append).
    private func grow(toFit needed: Int) -> Bool {
        var bigger = capacity
        while bigger < needed { bigger *= 2 }
        guard bigger <= Self.maxBytes, MappedJournalFile.extend(fd, to: bigger) else {
            errno = ENOSPC
            return false
        }
        capacity = bigger
        return true
    }

    /// Moves this process's complete records into the ledger and clears the
    /// journal when everything in it is stored. Returns the records stored.
    @discardableResult
    public func drain(into ledger: UsageLedger) throws -> Int { try drainRecords(into: ledger).rows }

    /// As `drain`, returning what the usage book needs of each stored row
    /// of a key (it subtracts them from its pending counts).
    /// One caller at a time (`UsageService.drainOnce`).
    public func drainRecords(into ledger: UsageLedger) throws -> (rows: Int, ofKeys: [UsageBook.Stored]) {
        let (start, end) = lock.withLock { (consumed, length) }
        guard end > start else { return (0, []) }
        // [start, end) is complete and stays as it is until this drain
        // moves past it: appends write beyond `end`, nothing else writes here.
        let buf = UnsafeBufferPointer(start: (base + start).assumingMemoryBound(to: UInt8.self), count: end - start)
        let (lines, used, _) = JournalLines.fields(in: buf)
        guard used > 0 else { return (0, []) }
        try ledger.insert(lines)
        let stored = lines.compactMap(UsageBook.Stored.init)
        lock.withLock {
            consumed = start + used
            // Only when no line came in meanwhile: appends share this lock.
            if consumed == length {
                base.storeBytes(of: 0, as: UInt8.self)
                (length, consumed) = (0, 0)
            }
        }
        return (lines.count, stored)
    }

    /// Stores the provisional rows of requests still in flight as
    /// `interrupted` (a stop that cuts them short): their final rows, if
    /// they still come, are then skipped as already stored. Returns the rows stored.
    @discardableResult
    public func storeInFlight(into ledger: UsageLedger) throws -> Int {
        let bytes = inFlight.lines()
        guard !bytes.isEmpty else { return 0 }
        return try bytes.withUnsafeBufferPointer { try ledger.insert(JournalLines.fields(in: $0).lines, replayed: true) }
    }

    /// Removes this process's journal when nothing is left in it (a clean
    /// stop, after the last drain); otherwise it stays for the next start.
    public func closeIfEmpty() {
        lock.withLock {
            if length == 0 {
                unlink(path)
                inFlight.remove()
            }
        }
    }

    /// What a replay did: rows stored (a record already in the ledger
    /// counts once), lines that were not records (logged by the caller),
    /// journals taken.
    public struct Replay: Equatable, Sendable {
        public var stored = 0
        public var skipped = 0
        public var journals = 0
    }

    /// Journals of processes that are gone (or zombies: a writer that can
    /// never write again) — their records, then the provisional rows of
    /// what they had in flight — stored, then removed. Each journal is
    /// taken by one process at a time (`flock`, never waited for: a journal
    /// another process is replaying is left to it) and read in chunks, so a
    /// 1 GiB journal costs a chunk of memory, not a gigabyte (two workers
    /// starting on one took 2 GB). The drain thread calls this every few
    /// seconds too: a dead worker's rows do not wait for the next start.
    @discardableResult
    public func replayLeftovers(into ledger: UsageLedger, chunkBytes: Int = 1 << 20) throws -> Replay {
        var out = Replay()
        guard let dir = opendir(directory) else { return out }
        var stems: Set<String> = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("journal-") else { continue }
            for suffix in [".log", ".inflight"] where name.hasSuffix(suffix) { stems.insert(String(name.dropLast(suffix.count))) }
        }
        closedir(dir)
        let own = String(path.dropLast(".log".count))
        for stem in stems.sorted() where directory + "/" + stem != own {
            let parts = stem.dropFirst("journal-".count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), let start = Int(parts[1]) else { continue }
            if let live = Self.startTime(of: pid), live == start { continue } // its writer is alive
            let base = directory + "/" + stem
            // The lock is on the journal (or, without one, the slots file):
            // whoever holds it replays both; a second process skips them.
            let lockPath = access(base + ".log", F_OK) == 0 ? base + ".log" : base + ".inflight"
            let lockFD = open(lockPath, O_RDONLY | O_CLOEXEC)
            guard lockFD >= 0 else { continue }
            defer { close(lockFD) }
            guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else { continue }
            // Removed by the process that held the lock before us: nothing left.
            guard access(lockPath, F_OK) == 0 else { continue }
            for suffix in [".log", ".inflight"] {
                let (stored, skipped) = try Self.replay(base + suffix, slots: suffix == ".inflight", into: ledger, chunkBytes: chunkBytes)
                out.stored += stored
                out.skipped += skipped
            }
            unlink(base + ".inflight")
            unlink(base + ".log")
            out.journals += 1
        }
        return out
    }

    /// One leftover file stored chunk by chunk: a journal's lines up to its
    /// first zero byte, or a slots file's complete slots.
    static func replay(_ file: String, slots: Bool, into ledger: UsageLedger, chunkBytes: Int) throws -> (stored: Int, skipped: Int) {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (0, 0) }
        defer { close(fd) }
        let chunk = slots ? max(1, chunkBytes / InFlightSlots.slotBytes) * InFlightSlots.slotBytes : max(4096, chunkBytes)
        var buffer = [UInt8](repeating: 0, count: chunk)
        var carry: [UInt8] = []
        var offset: off_t = 0
        var (stored, skipped) = (0, 0)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, chunk, offset) }
            guard n > 0 else { break }
            offset += off_t(n)
            var bytes: [UInt8]
            var ended = false
            if slots {
                bytes = buffer.withUnsafeBytes { InFlightSlots.lines(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            } else {
                let read = buffer[..<n]
                let end = read.firstIndex(of: 0) ?? n
                ended = end < n
                bytes = carry + read[..<end]
            }
            try bytes.withUnsafeBufferPointer { buf in
                let (lines, consumed, bad) = JournalLines.fields(in: buf)
                stored += try ledger.insert(lines, replayed: true)
                skipped += bad
                carry = slots ? [] : Array(buf[consumed...])
            }
            // A line longer than a chunk is no record of ours.
            if carry.count >= chunk { skipped += 1; carry = [] }
            if ended { break }
        }
        return (stored, skipped)
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

    /// A process's start time in clock ticks since boot; nil when it is
    /// gone or a zombie (`Z`, `X`: it can never write again, and its parent
    /// may not reap it for a long time).
    static func startTime(of pid: Int32) -> Int? {
        guard let bytes = FileIO.read("/proc/\(pid)/stat", limit: 4096) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        // Fields after the command name, which is in parentheses and may hold spaces.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil } // field 3: the state
        return Int(fields[19]) // field 22 overall
    }
}
