import Glibc
import KimiCore

/// Extracted document texts on disk, shared by every process of the
/// machine: asking about the same document again neither re-uploads nor
/// re-extracts it. Keys are the file's SHA-256 (or `file-<id>` for a file
/// uploaded earlier); each entry is one JSON file written to a temporary
/// name and renamed into place (a reader sees a whole entry or none). The
/// total stays under `maxBytes`: the least recently used entries go first
/// (a hit touches the entry's mtime).
public final class DocumentCache: @unchecked Sendable {
    public struct Entry: Equatable, Sendable {
        public var content: String
        public var filename: String
        /// The upstream file it was extracted from.
        public var fileID: String
        public init(content: String, filename: String, fileID: String) {
            (self.content, self.filename, self.fileID) = (content, filename, fileID)
        }
    }

    public let directory: String
    public let maxBytes: Int

    public init(directory: String, maxBytes: Int) {
        self.directory = directory
        self.maxBytes = maxBytes
        _ = SharedFiles.ensureParent(of: directory + "/x")
        mkdir(directory + "/tmp", 0o700)
        mkdir(directory + "/locks", 0o700)
        sweepSpool()
    }

    /// Runs `body` — the upload and extraction of the document `key` —
    /// while holding the machine-wide lock of that key: six concurrent
    /// questions about one new document, in any processes, make one upload;
    /// the others wait for it and find its text in the cache (`body` checks
    /// first). The lock is an `flock` on `locks/<key>.lock`, released by the
    /// kernel when its holder dies; its holder unlinks the file, and a
    /// waiter that locked an unlinked file locks the new one. A waiter
    /// gives up after `waitMs` and runs `body` itself (a wedged holder
    /// delays others, never stops them); so does one that cannot open the
    /// lock file.
    public func exclusively<T>(_ key: String, waitMs: Int, _ body: () throws -> T) rethrows -> T {
        guard Self.isKey(key) else { return try body() }
        let path = directory + "/locks/" + key + ".lock"
        let deadline = Clock.monotonicNanos() &+ UInt64(max(0, waitMs)) * 1_000_000
        var fd: Int32 = -1
        while true {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return try body() }
            var locked = flock(fd, LOCK_EX | LOCK_NB) == 0
            while !locked, Clock.monotonicNanos() < deadline {
                usleep(10_000)
                locked = flock(fd, LOCK_EX | LOCK_NB) == 0
            }
            guard locked else {
                close(fd)
                return try body()
            }
            var held = stat(), named = stat()
            if fstat(fd, &held) == 0, stat(path, &named) == 0, held.st_ino == named.st_ino, held.st_dev == named.st_dev { break }
            close(fd) // the holder before us unlinked it: lock the current file
        }
        defer {
            unlink(path)
            close(fd)
        }
        return try body()
    }

    /// Where uploads are spooled before they are hashed (same filesystem).
    public var spoolDirectory: String { directory + "/tmp" }

    /// A `mkstemp` template for an upload's spool file, naming its writer
    /// (pid and start time, as the usage journals do), so a spool that a
    /// killed process left is recognised as nobody's (`sweepSpool`).
    public var spoolTemplate: String { spoolDirectory + "/upload-\(getpid())-\(UsageJournal.startTime(of: getpid()) ?? 0)-XXXXXX" }

    /// Removes spool files whose writer is gone (a worker killed mid-upload
    /// left one behind, outside the cache's bound, for ever): uploads named
    /// by `spoolTemplate`, and entries being written (`<key>.<pid>.<id>`).
    /// Run when a process opens the cache. Returns the files removed.
    @discardableResult
    public func sweepSpool() -> Int {
        guard let dir = opendir(spoolDirectory) else { return 0 }
        var gone: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let parts = name.split(separator: "-")
            if name.hasPrefix("upload-"), parts.count >= 4, let pid = Int32(parts[1]), let start = Int(parts[2]) {
                if UsageJournal.startTime(of: pid) != start { gone.append(name) }
            } else if !name.hasPrefix("."), case let dots = name.split(separator: "."), dots.count >= 3,
                      let pid = Int32(dots[dots.count - 2]), UsageJournal.startTime(of: pid) == nil {
                gone.append(name)
            }
        }
        closedir(dir)
        for name in gone { unlink(spoolDirectory + "/" + name) }
        return gone.count
    }

    static func isKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 160 && key.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
        } && !key.hasPrefix(".")
    }

    private func path(_ key: String) -> String { directory + "/" + key + ".json" }

    /// The bytes of an entry's file, nil when there is none (known before it is loaded).
    public func size(_ key: String) -> Int? {
        var st = stat()
        guard Self.isKey(key), stat(path(key), &st) == 0 else { return nil }
        return Int(st.st_size)
    }

    public func get(_ key: String) -> Entry? {
        guard Self.isKey(key), let bytes = FileIO.read(path(key), limit: 1 << 30), let j = try? JSON.parse(bytes),
              let content = j["content"]?.stringValue else { return nil }
        utime(path(key), nil) // most recently used
        return Entry(content: content, filename: j["filename"]?.stringValue ?? "", fileID: j["fileId"]?.stringValue ?? "")
    }

    public func put(_ key: String, _ entry: Entry) {
        guard Self.isKey(key) else { return }
        let record: JSON = ["content": .string(entry.content), "filename": .string(entry.filename), "fileId": .string(entry.fileID)]
        let bytes = record.serializedBytes()
        guard bytes.count <= maxBytes else { return }
        let tmp = spoolDirectory + "/\(key).\(getpid()).\(RequestID.fresh())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let ok = bytes.withUnsafeBytes { FileIO.writeAll(fd, $0) } && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path(key)) == 0 else { unlink(tmp); return }
        evict()
    }

    /// Removes least recently used entries until the total fits; what
    /// uploads being spooled take counts too (they are on the same disk).
    func evict() {
        guard let dir = opendir(directory) else { return }
        var entries: [(name: String, size: Int, mtime: Int)] = []
        var spooled = 0
        if let tmp = opendir(spoolDirectory) {
            while let e = readdir(tmp) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                var st = stat()
                if !name.hasPrefix("."), stat(spoolDirectory + "/" + name, &st) == 0 { spooled += Int(st.st_size) }
            }
            closedir(tmp)
        }
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".json") else { continue }
            var st = stat()
            guard stat(directory + "/" + name, &st) == 0 else { continue }
            entries.append((name, Int(st.st_size), Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)))
        }
        closedir(dir)
        var total = entries.reduce(spooled) { $0 + $1.size }
        for e in entries.sorted(by: { $0.mtime < $1.mtime }) where total > maxBytes {
            unlink(directory + "/" + e.name)
            total -= e.size
        }
    }
}
