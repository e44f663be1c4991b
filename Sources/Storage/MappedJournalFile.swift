import Glibc

/// A file of the usage journal's kind (the journal, the in-flight slots):
/// created 0600 for this process alone, sized and mapped shared, so what is
/// copied into the mapping is in the file (the kernel keeps it when the
/// process is killed) without a `write()`.
enum MappedJournalFile {
    /// Creates (truncates) the file, sizes it to `bytes` and maps
    /// `reserve` bytes of address space for it (at least `bytes`): the fd
    /// and the mapping. A reservation larger than the file lets the file
    /// grow (`extend`) under a mapping that never moves, so readers of its
    /// bytes need no lock against a remap.
    static func create(_ path: String, bytes: Int, reserve: Int = 0) throws -> (fd: Int32, base: UnsafeMutableRawPointer) {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteDatabase.Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard extend(fd, to: bytes), let m = map(fd, max(bytes, reserve), sized: true) else {
            let why = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw SQLiteDatabase.Failure(description: "cannot map \(path): \(why)")
        }
        return (fd, m)
    }

    /// Sizes the file to `bytes` (fallocate: a full disk fails here, not
    /// with SIGBUS on a later copy).
    static func extend(_ fd: Int32, to bytes: Int) -> Bool {
        posix_fallocate(fd, 0, off_t(bytes)) == 0 || ftruncate(fd, off_t(bytes)) == 0
    }

    /// Maps `bytes` of the file shared (sized first unless `sized`).
    static func map(_ fd: Int32, _ bytes: Int, sized: Bool = false) -> UnsafeMutableRawPointer? {
        guard sized || extend(fd, to: bytes) else { return nil }
        let m = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        return m == MAP_FAILED ? nil : m
    }
}
