import CAtomics
import Glibc
import KimiCore

/// The rate-limit table every gateway process on the machine shares: one
/// memory-mapped file, created 0600 on first use.
///
/// Layout (little-endian, 64-bit words):
///   header, 64 bytes: magic "KIMIRL01", version, capacity, check word
///   slots, 16 bytes each: client key (0 = empty), TAT in µs since the epoch
///
/// Concurrency: no locks at all. A slot is claimed with a CAS of its key word
/// from 0; a TAT changes only by CAS (`RateLimiter`). A process that dies
/// mid-operation leaves at most a claimed slot with an old TAT, which is a
/// valid state. Keys probe a window of `probe` slots; when the window is
/// full, the stalest slot is re-keyed: an expired one (TAT in the past)
/// is equivalent to a fresh client, an unexpired one has its TAT reset and
/// the eviction is logged (the table is too small for the traffic).
///
/// Failure: a missing, truncated or corrupt file (bad header or size) is
/// recreated atomically (written aside, renamed over) and logged; processes
/// that still map the old file notice the new inode within a second and
/// remap. When the file cannot be created or mapped at all, `slot` returns
/// nil and the caller falls back to a per-process limit (fails open to
/// per-process limiting, loudly), never to no limit.
public final class MappedLimiterStore: LimiterStore, @unchecked Sendable {
    static let magic: UInt64 = 0x3130_4C52_494D_494B // "KIMIRL01"
    static let version: UInt64 = 1
    static let headerBytes = 64
    static let probe = 32

    final class Mapping {
        let base: UnsafeMutableRawPointer
        let length: Int
        let capacity: Int
        let inode: UInt64
        /// Kept open so every check can fstat it: touching a mapping whose
        /// file was truncated in place raises SIGBUS.
        let fd: Int32
        init(base: UnsafeMutableRawPointer, length: Int, capacity: Int, inode: UInt64, fd: Int32) {
            self.base = base
            self.length = length
            self.capacity = capacity
            self.inode = inode
            self.fd = fd
        }
        deinit {
            munmap(base, length)
            close(fd)
        }
        var intact: Bool {
            var st = stat()
            return fstat(fd, &st) == 0 && Int(st.st_size) >= length
        }
        @inline(__always) func words(_ slot: Int) -> UnsafeMutablePointer<UInt64> {
            (base + MappedLimiterStore.headerBytes + slot * 16).assumingMemoryBound(to: UInt64.self)
        }
    }

    struct Slot: LimiterSlot {
        let mapping: Mapping // keeps the mapping alive while in use
        let word: UnsafeMutablePointer<UInt64>
        func load() -> Int64 { Int64(bitPattern: kimi_atomic_load64(word)) }
        func compareExchange(expected: Int64, desired: Int64) -> Bool {
            var e = UInt64(bitPattern: expected)
            return kimi_atomic_cas64(word, &e, UInt64(bitPattern: desired))
        }
    }

    /// The mapping in use, or none when the file could not be opened.
    final class Current { let mapping: Mapping?; init(_ m: Mapping?) { mapping = m } }

    public let path: String
    public let capacity: Int
    private let lock = Lock() // only around reopening
    private let current: Published<Current>
    private let recheck = IntervalGate(intervalNanos: 1_000_000_000)
    private let evictionLog = IntervalGate(intervalNanos: 10_000_000_000)
    public private(set) var recreations = 0

    public init(path: String, capacity: Int) {
        precondition(kimi_atomic_is_lock_free64(), "64-bit atomics must be lock-free for the shared limiter")
        self.path = path
        self.capacity = max(64, capacity)
        current = Published(Current(nil))
        lock.withLock { current.store(Current(openOrCreate())) }
    }

    /// The current mapping, re-validated against the file at most once a
    /// second by one thread; the others read it without a lock.
    private func mapping() -> Mapping? {
        let m = current.load().mapping
        let truncated = m.map { !$0.intact } ?? false
        guard truncated || recheck.tryEnter() else { return m }
        lock.withLock {
            let now = current.load().mapping
            if now == nil || !stillValid(now!) { current.store(Current(openOrCreate())) }
        }
        let fresh = current.load().mapping
        return fresh.map { $0.intact ? $0 : nil } ?? nil
    }

    private func stillValid(_ m: Mapping) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, UInt64(st.st_ino) == m.inode, Int(st.st_size) >= m.length else { return false }
        let h = m.base.assumingMemoryBound(to: UInt64.self)
        return h[0] == Self.magic && h[1] == Self.version && h[2] == UInt64(m.capacity) && h[3] == Self.check(UInt64(m.capacity))
    }

    static func check(_ capacity: UInt64) -> UInt64 { (magic ^ (capacity &* 0x9E37_79B9_7F4A_7C15)) ^ version }

    private func openOrCreate() -> Mapping? {
        if let m = openExisting() { return m }
        guard create() else { return nil }
        return openExisting()
    }

    private func openExisting() -> Mapping? {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno != ENOENT { Log.error("rate-limit file \(path): \(String(cString: strerror(errno))); recreating") }
            return nil
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); return nil }
        let expected = Self.headerBytes + capacity * 16
        guard Int(st.st_size) == expected else {
            close(fd)
            Log.error("rate-limit file \(path) has \(st.st_size) bytes, expected \(expected) (truncated, corrupt or resized); recreating")
            return nil
        }
        guard let p = mmap(nil, expected, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            close(fd)
            Log.error("rate-limit file \(path): mmap failed: \(String(cString: strerror(errno)))")
            return nil
        }
        let m = Mapping(base: p, length: expected, capacity: capacity, inode: UInt64(st.st_ino), fd: fd)
        let h = p.assumingMemoryBound(to: UInt64.self)
        guard h[0] == Self.magic, h[1] == Self.version, h[2] == UInt64(capacity), h[3] == Self.check(UInt64(capacity)) else {
            Log.error("rate-limit file \(path) has a bad header (corrupt or another format); recreating")
            return nil
        }
        return m
    }

    /// Writes a fresh table aside and renames it over the path, so no
    /// process ever maps a half-written file.
    private func create() -> Bool {
        let tmp = "\(path).\(getpid()).\(Clock.monotonicNanos()).tmp"
        let fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            Log.error("rate-limit file: cannot create \(tmp): \(String(cString: strerror(errno)))")
            return false
        }
        defer { close(fd) }
        let length = Self.headerBytes + capacity * 16
        guard ftruncate(fd, off_t(length)) == 0 else { unlink(tmp); return false }
        var header = [UInt64](repeating: 0, count: Self.headerBytes / 8)
        header[0] = Self.magic
        header[1] = Self.version
        header[2] = UInt64(capacity)
        header[3] = Self.check(UInt64(capacity))
        let wrote = header.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard wrote == Self.headerBytes else { unlink(tmp); return false }
        // Durability is not needed (a lost table only resets quotas), so the
        // result of fsync does not decide anything; it only orders the header
        // before the rename on filesystems that care.
        _ = fsync(fd)
        // Another process may have created a valid file meanwhile: keep theirs.
        if openExistingQuietly() { unlink(tmp); return true }
        guard rename(tmp, path) == 0 else {
            Log.error("rate-limit file: rename to \(path) failed: \(String(cString: strerror(errno)))")
            unlink(tmp)
            return false
        }
        recreations += 1
        Log.info("rate-limit file \(path) created (\(capacity) slots, \(length) bytes, mode 0600)")
        return true
    }

    private func openExistingQuietly() -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var h = [UInt64](repeating: 0, count: 4)
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == Self.headerBytes + capacity * 16 else { return false }
        let n = h.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 32, 0) }
        return n == 32 && h[0] == Self.magic && h[1] == Self.version && h[2] == UInt64(capacity) && h[3] == Self.check(UInt64(capacity))
    }

    public func slot(for key: UInt64, now: Int64) -> LimiterSlot? {
        guard let m = mapping() else { return nil }
        let start = Int(key % UInt64(m.capacity))
        var stalest = -1
        var stalestTAT = Int64.max
        for i in 0..<min(Self.probe, m.capacity) {
            let s = (start + i) % m.capacity
            let w = m.words(s)
            var k = kimi_atomic_load64(w)
            if k == key { return Slot(mapping: m, word: w + 1) }
            if k == 0 {
                var expected: UInt64 = 0
                if kimi_atomic_cas64(w, &expected, key) { return Slot(mapping: m, word: w + 1) }
                k = expected
                if k == key { return Slot(mapping: m, word: w + 1) } // another process claimed it for the same client
            }
            let tat = Int64(bitPattern: kimi_atomic_load64(w + 1))
            if tat < stalestTAT { stalestTAT = tat; stalest = s }
        }
        // The window is full of other clients: take over the stalest slot.
        guard stalest >= 0 else { return nil }
        let w = m.words(stalest)
        var old = kimi_atomic_load64(w)
        guard kimi_atomic_cas64(w, &old, key) else { return slot(for: key, now: now) }
        if stalestTAT > now {
            // Still limiting someone: the newcomer starts fresh, and we say so.
            var t = UInt64(bitPattern: stalestTAT)
            _ = kimi_atomic_cas64(w + 1, &t, 0)
            if evictionLog.tryEnter() {
                Log.warn("rate-limit table full around slot \(stalest): evicted an active client (raise rateLimit.tableSize)")
            }
        }
        return Slot(mapping: m, word: w + 1)
    }
}
