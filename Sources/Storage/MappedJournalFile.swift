import Glibc

/// A file of the usage journal's kind (the journal, the in-flight slots):
/// created 0600 for this process alone, sized and mapped shared, so what is
/// copied into the mapping is in the file (the kernel keeps it when the
/// process is killed) without a `write()`.
enum MappedJournalFile {
    /// Creates (truncates) the file and maps `bytes` of it: the fd and the mapping.
    static func create(_ path: String, bytes: Int) throws -> (fd: Int32, base: UnsafeMutableRawPointer) {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteDatabase.Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard let m = map(fd, bytes) else {
            let why = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw SQLiteDatabase.Failure(description: "cannot map \(path): \(why)")
        }
        return (fd, m)
    }

    /// Sizes the file (fallocate: a full disk fails here, not with SIGBUS
    /// on a later copy) and maps it shared.
    static func map(_ fd: Int32, _ bytes: Int) -> UnsafeMutableRawPointer? {
        guard posix_fallocate(fd, 0, off_t(bytes)) == 0 || ftruncate(fd, off_t(bytes)) == 0 else { return nil }
        let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        return m == MAP_FAILED ? nil : m
    }
}
