import CAtomics
import Glibc
import KimiCore

/// The mechanics of a table that every gateway process on the machine shares
/// through one memory-mapped file (the limiter today; metrics and key health
/// next): header and version, race-free creation, one-winner replacement of
/// a corrupt file, an owner and mode check, a private fallback location.
///
/// Layout: a 64-byte header of little-endian words — magic, version,
/// capacity, check word — then `capacity` slots of `slotBytes`.
///
/// Creation is race-free: the table is written in full under a temporary
/// name and published with `link()`, which fails with EEXIST when another
/// process got there first; the loser maps the winner's file. So every
/// process maps the same inode from its first request (a `rename()` instead
/// let two processes each publish a table, and the limit doubled until the
/// once-a-second recheck).
///
/// Replacement of a corrupt or truncated file is settled by one winner:
/// whoever finds it bad takes `flock(LOCK_EX)` on the bad inode, checks the
/// path still names that inode, and only then renames a fresh table over
/// it; the others wait on the same lock, see the new inode and map it. The
/// kernel drops a flock when its holder dies, so a dead process holds
/// nothing. (The lock is taken only on this rare path, never per request.)
///
/// Trust: a file not owned by this user, not a regular file, or writable by
/// group or others is refused (another local user could reset every quota
/// through it); the table is then kept in a private directory instead,
/// loudly. Files are created 0600.
public final class SharedTableFile: @unchecked Sendable {
    public struct Format: Equatable, Sendable {
        public var magic: UInt64
        public var version: UInt64
        public var capacity: Int
        public var slotBytes: Int
        public static let headerBytes = 64
        public init(magic: UInt64, version: UInt64, capacity: Int, slotBytes: Int) {
            self.magic = magic
            self.version = version
            self.capacity = capacity
            self.slotBytes = slotBytes
        }
        public var length: Int { Self.headerBytes + capacity * slotBytes }
        var check: UInt64 { (magic ^ (UInt64(capacity) &* 0x9E37_79B9_7F4A_7C15)) ^ version ^ UInt64(slotBytes) }
        var header: [UInt64] {
            var h = [UInt64](repeating: 0, count: Self.headerBytes / 8)
            (h[0], h[1], h[2], h[3]) = (magic, version, UInt64(capacity), check)
            return h
        }
        func matches(_ h: UnsafePointer<UInt64>) -> Bool {
            h[0] == magic && h[1] == version && h[2] == UInt64(capacity) && h[3] == check
        }
    }

    /// One mapping of the file; kept alive by whoever still uses it.
    public final class Mapping: @unchecked Sendable {
        public let base: UnsafeMutableRawPointer
        public let length: Int
        public let inode: UInt64
        public let path: String
        /// Kept open so every use can fstat it: touching a mapping whose
        /// file was truncated in place raises SIGBUS.
        let fd: Int32
        init(base: UnsafeMutableRawPointer, length: Int, inode: UInt64, path: String, fd: Int32) {
            self.base = base
            self.length = length
            self.inode = inode
            self.path = path
            self.fd = fd
        }
        deinit {
            munmap(base, length)
            close(fd)
        }
        public var intact: Bool {
            var st = stat()
            return fstat(fd, &st) == 0 && Int(st.st_size) >= length
        }
        @inline(__always) public func slot(_ i: Int, bytes: Int) -> UnsafeMutableRawPointer {
            base + Format.headerBytes + i * bytes
        }
    }

    public let format: Format
    /// The configured path.
    public let requestedPath: String
    /// Where the table actually lives: the configured path, or the private
    /// fallback when the configured file was refused.
    public private(set) var path: String
    /// What the log calls this table ("rate-limit table").
    public let label: String
    /// Tables this process published (created or replaced): tests read it.
    public private(set) var published = 0

    public init(path: String, format: Format, label: String) {
        requestedPath = path
        self.path = path
        self.format = format
        self.label = label
    }

    /// Maps the file, creating or replacing it as needed; nil when it cannot
    /// be used at all (the caller then falls back, loudly).
    public func open() -> Mapping? {
        if let m = open(at: path) { return m }
        guard path == requestedPath, refused else { return nil }
        // The configured file is not ours to trust: keep the table in a
        // private directory instead (every process of this user picks the
        // same one, so the limit still holds machine-wide).
        guard let dir = SharedFiles.privateDirectory() else {
            Log.error("\(label): no private directory for a replacement table; the caller falls back")
            return nil
        }
        let fallback = dir + "/" + SharedFiles.basename(requestedPath)
        Log.error("\(label): refusing \(requestedPath) (\(refusal)); using \(fallback) instead — fix the file's owner/mode or point the config at a private directory")
        path = fallback
        refused = false
        return open(at: fallback)
    }

    private var refused = false
    private var refusal = ""

    /// Still the file at `path`, with a valid header? (The once-a-second recheck.)
    public func stillCurrent(_ m: Mapping) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, UInt64(st.st_ino) == m.inode, Int(st.st_size) >= m.length else { return false }
        return format.matches(m.base.assumingMemoryBound(to: UInt64.self))
    }

    private func open(at p: String) -> Mapping? {
        guard SharedFiles.ensureParent(of: p) else {
            Log.error("\(label): cannot create the directory of \(p): \(String(cString: strerror(errno)))")
            return nil
        }
        // A handful of rounds: each one either maps a good file or changes
        // the state (creates, or waits for the one replacing a bad file).
        for _ in 0..<8 {
            let fd = Glibc.open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            if fd < 0 {
                if errno == ENOENT {
                    guard publishFresh(at: p, replacing: nil) else { return nil }
                    continue
                }
                if errno == ELOOP { refuse("it is a symbolic link"); return nil }
                Log.error("\(label) \(p): \(String(cString: strerror(errno)))")
                return nil
            }
            var st = stat()
            guard fstat(fd, &st) == 0 else { close(fd); return nil }
            if let why = SharedFiles.untrusted(st) { close(fd); refuse(why); return nil }
            if Int(st.st_size) == format.length {
                guard let base = mmap(nil, format.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
                    Log.error("\(label) \(p): mmap failed: \(String(cString: strerror(errno)))")
                    close(fd)
                    return nil
                }
                let m = Mapping(base: base, length: format.length, inode: UInt64(st.st_ino), path: p, fd: fd)
                if format.matches(base.assumingMemoryBound(to: UInt64.self)) { return m }
                Log.error("\(label) \(p) has a bad header (corrupt or another format); replacing it")
                replace(fd: m.fd, inode: UInt64(st.st_ino), at: p)
                continue // m unmaps and closes
            }
            Log.error("\(label) \(p) has \(st.st_size) bytes, expected \(format.length) (truncated, corrupt or resized); replacing it")
            replace(fd: fd, inode: UInt64(st.st_ino), at: p)
            close(fd)
        }
        Log.error("\(label) \(p): could not settle on a table after several tries")
        return nil
    }

    private func refuse(_ why: String) {
        refused = true
        refusal = why
    }

    /// One winner replaces a bad file: the lock is on the bad inode itself.
    private func replace(fd: Int32, inode: UInt64, at p: String) {
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { return }
        }
        defer { flock(fd, LOCK_UN) }
        var st = stat()
        // Someone else already put a fresh table there: nothing to do.
        guard stat(p, &st) == 0, UInt64(st.st_ino) == inode else { return }
        _ = publishFresh(at: p, replacing: inode)
    }

    /// Writes a complete table under a temporary name, then publishes it:
    /// `link()` for a new file (EEXIST: another process won, fine), or
    /// `rename()` over a bad one (only under that file's lock).
    private func publishFresh(at p: String, replacing: UInt64?) -> Bool {
        let tmp = "\(p).\(getpid()).\(Clock.monotonicNanos()).tmp"
        let fd = Glibc.open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            Log.error("\(label): cannot create \(tmp): \(String(cString: strerror(errno)))")
            return false
        }
        defer { close(fd); unlink(tmp) }
        fchmod(fd, 0o600) // whatever the umask
        guard ftruncate(fd, off_t(format.length)) == 0 else {
            Log.error("\(label): cannot size \(tmp): \(String(cString: strerror(errno)))")
            return false
        }
        let header = format.header
        let wrote = header.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard wrote == Format.headerBytes else { return false }
        if replacing == nil {
            if link(tmp, p) == 0 {
                published += 1
                Log.info("\(label) \(p) created (\(format.capacity) slots, \(format.length) bytes, mode 0600)")
                return true
            }
            if errno == EEXIST { return true } // another process published first: use theirs
            Log.error("\(label): cannot publish \(p): \(String(cString: strerror(errno)))")
            return false
        }
        guard rename(tmp, p) == 0 else {
            Log.error("\(label): cannot replace \(p): \(String(cString: strerror(errno)))")
            return false
        }
        published += 1
        Log.info("\(label) \(p) replaced by a fresh table (\(format.capacity) slots)")
        return true
    }
}
