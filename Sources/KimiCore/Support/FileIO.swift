#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers over POSIX calls (the runtime targets avoid Foundation
/// to keep each process's memory small).
public enum FileIO {
    /// A regular file's bytes, or nil. Opened non-blocking and checked
    /// before reading: a FIFO at a config path would otherwise hang the
    /// request thread that reloads it in `open()`.
    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }

    public static func read(_ path: String, limit: Int = 16 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            out += buf[0..<n]
            if out.count > limit { return nil }
        }
        return out
    }

    /// Why `read` would fail for `path`, for error messages.
    public static func unreadableReason(_ path: String) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { return String(cString: strerror(errno)) }
        if (st.st_mode & S_IFMT) != S_IFREG { return "not a regular file" }
        return access(path, R_OK) == 0 ? "too large or unreadable" : String(cString: strerror(EACCES))
    }

    public static func readText(_ path: String) -> String? { read(path).map { String(decoding: $0, as: UTF8.self) } }

    @discardableResult
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }

    /// mtime in nanoseconds plus size and inode mixed in, or -1 when missing:
    /// an edit within the same second that changes size is still seen.
    public static func mtimeNanos(_ path: String) -> Int64 {
        var st = stat()
        guard stat(path, &st) == 0 else { return -1 }
        return Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec) &+ Int64(st.st_size) &* 7 &+ Int64(bitPattern: UInt64(st.st_ino)) &* 13
    }

    public static func environment() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}
