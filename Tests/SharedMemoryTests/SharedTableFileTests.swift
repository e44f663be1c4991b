import Glibc
import Testing
@testable import KimiCore
@testable import SharedMemory

/// Issue #9 defects 1 and 2: every process maps one table from its first
/// request, and a table another user could write is never used.
@Suite(.serialized) struct SharedTableFileTests {
    let dir = ForkedProcesses.temporaryDirectory("kimi-table-test")

    /// Forks `processes` children that open a store on `path` at the same
    /// instant (a pipe barrier) and each try `tries` checks against a limit
    /// of `limit`; returns how many were admitted in all.
    func admittedByFreshProcesses(path: String, processes: Int, tries: Int, limit: Int) -> Int {
        let g = GCRA(.init(windowMs: 3_600_000, maxRequests: limit))
        // The children's code paths (creating, or replacing a corrupt file
        // like `path`), run once here first: see `ForkedProcesses.together`.
        let warm = path + ".warm"
        if let bytes = FileIO.read(path) { FileIO.write(warm, bytes, mode: 0o600) }
        return ForkedProcesses.together(processes, warmUp: {
            _ = RateLimiter(store: MappedRateLimitStore(path: warm, capacity: 1024)).check(key: 4242, policy: g)
        }) {
            let mine = RateLimiter(store: MappedRateLimitStore(path: path, capacity: 1024))
            var n: Int32 = 0
            for _ in 0..<tries where mine.check(key: 4242, policy: g)?.allowed == true { n += 1 }
            return n
        }.reduce(0) { $0 + Int($1) }
    }

    @Test func processesStartingTogetherOnNoFileShareOneTable() {
        for trial in 0..<20 {
            let admitted = admittedByFreshProcesses(path: dir + "/fresh-\(trial).bin", processes: 8, tries: 10, limit: 5)
            #expect(admitted == 5, "trial \(trial): \(admitted) admitted against a limit of 5")
        }
    }

    @Test func processesFindingOneCorruptFileAgreeOnOneReplacement() {
        for trial in 0..<20 {
            let path = dir + "/corrupt-\(trial).bin"
            FileIO.write(path, Array(repeating: 0xAB, count: 64 + 1024 * 16), mode: 0o600)
            let admitted = admittedByFreshProcesses(path: path, processes: 8, tries: 10, limit: 5)
            #expect(admitted == 5, "trial \(trial): \(admitted) admitted against a limit of 5")
        }
    }

    @Test func noTemporaryFilesAreLeftBehind() throws {
        _ = admittedByFreshProcesses(path: dir + "/tidy.bin", processes: 4, tries: 1, limit: 5)
        let names = try #require(listDirectory(dir))
        #expect(!names.contains { $0.hasSuffix(".tmp") }, "\(names)")
    }

    /// A valid table someone made writable by others: refused, and the
    /// limit lives in a private file that zeroing the public one cannot reset.
    @Test func tableWritableByOthersIsRefusedAndZeroingItGivesNothing() throws {
        let name = "shared-\(getpid())-\(Clock.monotonicNanos()).bin"
        let path = dir + "/" + name
        _ = MappedRateLimitStore(path: path, capacity: 128) // a valid table...
        chmod(path, 0o666) // ...that any local user can now write
        let store = MappedRateLimitStore(path: path, capacity: 128)
        #expect(store.path != path)
        #expect(store.path.hasSuffix("/" + name))
        var st = stat()
        #expect(stat(store.path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let limiter = RateLimiter(store: store)
        let g = GCRA(.init(windowMs: 3_600_000, maxRequests: 2))
        let now = Clock.wallMicros()
        #expect(limiter.check(key: 1, policy: g, now: now)?.allowed == true)
        #expect(limiter.check(key: 1, policy: g, now: now)?.allowed == true)
        #expect(limiter.check(key: 1, policy: g, now: now)?.allowed == false)
        FileIO.write(path, Array(repeating: 0, count: 64 + 128 * 16), mode: 0o666) // the attacker resets "the" table
        #expect(limiter.check(key: 1, policy: g, now: now)?.allowed == false)
        unlink(store.path)
    }

    @Test func tableOwnedByAnotherUserIsRefused() throws {
        try #require(geteuid() == 0, "needs root to give a file away")
        let path = dir + "/theirs-\(getpid()).bin"
        _ = MappedRateLimitStore(path: path, capacity: 128)
        chown(path, 65534, 65534)
        let store = MappedRateLimitStore(path: path, capacity: 128)
        #expect(store.path != path)
        unlink(store.path)
    }

    @Test func symbolicLinkAtTheTablePathIsRefused() throws {
        let target = dir + "/target.bin"
        _ = MappedRateLimitStore(path: target, capacity: 128)
        let link = dir + "/link-\(getpid()).bin"
        symlink(target, link)
        let store = MappedRateLimitStore(path: link, capacity: 128)
        #expect(store.path != link)
        unlink(store.path)
    }

    @Test func missingParentDirectoryIsCreatedPrivate() throws {
        let path = dir + "/sub/rl.bin"
        let store = MappedRateLimitStore(path: path, capacity: 128)
        #expect(store.slot(for: 1, now: 0) != nil)
        var st = stat()
        #expect(stat(dir + "/sub", &st) == 0 && st.st_mode & 0o777 == 0o700)
    }

    func listDirectory(_ path: String) -> [String]? {
        guard let d = opendir(path) else { return nil }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            var name = e.pointee.d_name
            out.append(withUnsafePointer(to: &name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } })
        }
        return out
    }
}
