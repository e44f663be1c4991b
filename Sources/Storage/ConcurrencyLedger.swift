import Glibc
import KimiCore

/// What this process holds of the machine's per-key concurrency counts
/// (`limits … maxConcurrent`), in a file of its own
/// (`<dir>/<pid>-<start>.slots`, a shared mapping: the kernel keeps what
/// was written when the process is killed). The counts themselves are
/// shared words (the limiter's table or Redis) that every process changes by
/// compare-and-swap; this file is how a SIGKILLed worker's requests are
/// given back: `sweep` finds the files of processes that are gone and
/// returns each slot's count to its word, then removes the file.
///
/// Order, so a death between two steps errs towards giving back: a request
/// notes its slot here before it takes the shared word, and releases the
/// word before it un-notes the slot.
public final class ConcurrencyLedger: @unchecked Sendable {
    static let slots = 4096
    static let slotBytes = 16 // key (UInt64), count (Int64)
    public let path: String
    private let base: UnsafeMutableRawPointer
    private let lock = Lock()

    public init(directory: String) throws {
        _ = SharedFiles.ensureParent(of: directory + "/x")
        path = directory + "/\(getpid())-\(UsageJournal.startTime(of: getpid()) ?? 0).slots"
        (_, base) = try MappedJournalFile.create(path, bytes: Self.slots * Self.slotBytes)
    }

    /// Adds `delta` to this process's count for `key`; false when the file is full.
    @discardableResult
    public func add(_ key: UInt64, _ delta: Int64) -> Bool {
        lock.withLock {
            let key = key == 0 ? 1 : key
            var i = Int(key % UInt64(Self.slots))
            for _ in 0..<Self.slots {
                let p = base + i * Self.slotBytes
                let k = p.load(as: UInt64.self)
                if k == key || k == 0 {
                    if k == 0 { p.storeBytes(of: key, as: UInt64.self) }
                    let c = p.load(fromByteOffset: 8, as: Int64.self) + delta
                    p.storeBytes(of: max(0, c), toByteOffset: 8, as: Int64.self)
                    return true
                }
                i = (i + 1) % Self.slots
            }
            return false
        }
    }

    /// This process's count for `key` (tests).
    public func count(_ key: UInt64) -> Int64 {
        lock.withLock {
            Self.counts(UnsafeRawBufferPointer(start: base, count: Self.slots * Self.slotBytes))[key == 0 ? 1 : key] ?? 0
        }
    }

    static func counts(_ bytes: UnsafeRawBufferPointer) -> [UInt64: Int64] {
        var out: [UInt64: Int64] = [:]
        for i in 0..<(bytes.count / slotBytes) {
            let k = bytes.load(fromByteOffset: i * slotBytes, as: UInt64.self)
            let c = bytes.load(fromByteOffset: i * slotBytes + 8, as: Int64.self)
            if k != 0, c > 0 { out[k, default: 0] += c }
        }
        return out
    }

    /// The files of processes that are gone: each one's counts handed to
    /// `giveBack` (key, count), then the file removed. One sweeper per file
    /// (flock); safe to run from every process, at start and every second.
    /// Returns the files swept.
    @discardableResult
    public static func sweep(directory: String, giveBack: (UInt64, Int64) -> Void) -> Int {
        guard let dir = opendir(directory) else { return 0 }
        var dead: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".slots") else { continue }
            let parts = name.dropLast(6).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), let start = Int(parts[1]) else { continue }
            if UsageJournal.startTime(of: pid) != start { dead.append(name) }
        }
        closedir(dir)
        var swept = 0
        for name in dead {
            let file = directory + "/" + name
            let fd = open(file, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            // Still there (another sweeper may have finished it meanwhile)?
            var st = stat(), named = stat()
            guard fstat(fd, &st) == 0, stat(file, &named) == 0, st.st_ino == named.st_ino else { continue }
            let bytes = slots * slotBytes
            if Int(st.st_size) >= bytes, let m = mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0), m != MAP_FAILED {
                for (k, c) in counts(UnsafeRawBufferPointer(start: m, count: bytes)) { giveBack(k, c) }
                munmap(m, bytes)
            }
            unlink(file)
            swept += 1
        }
        return swept
    }
}
