import Glibc
import Testing
@testable import KimiCore
@testable import Storage

@Suite struct DocumentCacheTests {
    static func freshDir() -> String {
        var template = Array("/tmp/kimi-docs-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!) + "/documents"
    }

    @Test func entriesSurviveAnotherInstanceAndKeysAreChecked() {
        let dir = Self.freshDir()
        let a = DocumentCache(directory: dir, maxBytes: 1 << 20)
        a.put("abc123", .init(content: "text", filename: "f.txt", fileID: "cn1"))
        #expect(DocumentCache(directory: dir, maxBytes: 1 << 20).get("abc123") == .init(content: "text", filename: "f.txt", fileID: "cn1"))
        #expect(a.get("missing") == nil)
        a.put("../escape", .init(content: "x", filename: "", fileID: ""))
        #expect(a.get("../escape") == nil && access(dir + "/../escape.json", F_OK) != 0)
    }

    @Test func theLeastRecentlyUsedEntriesGoWhenTheTotalIsOverTheBound() throws {
        let dir = Self.freshDir()
        let cache = DocumentCache(directory: dir, maxBytes: 3_000)
        let text = String(repeating: "x", count: 900)
        for key in ["a", "b", "c"] {
            cache.put(key, .init(content: text, filename: "", fileID: key))
            usleep(20_000) // distinct mtimes
        }
        _ = cache.get("a") // a is now the most recently used
        usleep(20_000)
        cache.put("d", .init(content: text, filename: "", fileID: "d"))
        #expect(cache.get("b") == nil) // the oldest unused one went
        #expect(cache.get("a") != nil && cache.get("c") != nil && cache.get("d") != nil)
    }

    @Test func anEntryLargerThanTheWholeCacheIsNotKept() {
        let cache = DocumentCache(directory: Self.freshDir(), maxBytes: 100)
        cache.put("big", .init(content: String(repeating: "y", count: 500), filename: "", fileID: ""))
        #expect(cache.get("big") == nil)
    }

    @Test func spoolsThatAKilledProcessLeftAreSweptAndLiveOnesKept() throws {
        let dir = Self.freshDir()
        let first = DocumentCache(directory: dir, maxBytes: 1 << 20)
        let me = "\(getpid())-\(UsageJournal.startTime(of: getpid()) ?? 0)"
        let names = ["upload-0-12345-abcdef", "upload-\(me)-abcdef", "upload-\(getpid())-1-abcdef", "doc.0.rid", "doc.\(getpid()).rid"]
        for n in names {
            let fd = open(first.spoolDirectory + "/" + n, O_WRONLY | O_CREAT, 0o600)
            _ = Array("spooled".utf8).withUnsafeBytes { FileIO.writeAll(fd, $0) }
            close(fd)
        }
        // A process opening the cache (a restart) sweeps what nobody writes any more.
        _ = DocumentCache(directory: dir, maxBytes: 1 << 20)
        let left = names.filter { access(first.spoolDirectory + "/" + $0, F_OK) == 0 }
        #expect(left == ["upload-\(me)-abcdef", "doc.\(getpid()).rid"])
        #expect(first.spoolTemplate.hasPrefix(first.spoolDirectory + "/upload-\(me)-") && first.spoolTemplate.hasSuffix("-XXXXXX"))
    }

    @Test func spoolsCountAgainstTheCachesBound() throws {
        let dir = Self.freshDir()
        let cache = DocumentCache(directory: dir, maxBytes: 3_000)
        cache.put("a", .init(content: String(repeating: "x", count: 900), filename: "", fileID: "a"))
        usleep(20_000)
        let fd = open(cache.spoolDirectory + "/upload-\(getpid())-\(UsageJournal.startTime(of: getpid()) ?? 0)-big", O_WRONLY | O_CREAT, 0o600)
        _ = [UInt8](repeating: 0x61, count: 1_500).withUnsafeBytes { FileIO.writeAll(fd, $0) }
        close(fd)
        cache.put("b", .init(content: String(repeating: "x", count: 900), filename: "", fileID: "b"))
        #expect(cache.get("a") == nil && cache.get("b") != nil) // 1,500 spooled + 2 entries of ~950 > 3,000
    }

    @Test func oneUploadAtATimePerDocumentAndTheOthersFindItsText() throws {
        let dir = Self.freshDir()
        // Two instances: two processes' caches of one directory.
        let caches = [DocumentCache(directory: dir, maxBytes: 1 << 20), DocumentCache(directory: dir, maxBytes: 1 << 20)]
        final class Shared: @unchecked Sendable {
            let inside = Locked(0), most = Locked(0), uploads = Locked(0)
            let caches: [DocumentCache]
            init(_ c: [DocumentCache]) { caches = c }
        }
        let shared = Shared(caches)
        var threads: [pthread_t] = []
        for i in 0..<6 {
            var t = pthread_t()
            final class Job: @unchecked Sendable { let s: Shared; let i: Int; init(_ s: Shared, _ i: Int) { self.s = s; self.i = i } }
            pthread_create(&t, nil, { arg in
                let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
                let cache = job.s.caches[job.i % 2]
                let text: String = cache.exclusively("doc-txt", waitMs: 10_000) {
                    if let hit = cache.get("doc-txt") { return hit.content }
                    let n = job.s.inside.update { $0 += 1; return $0 }
                    job.s.most.update { $0 = max($0, n) }
                    job.s.uploads.update { $0 += 1 }
                    usleep(100_000) // the upload and extraction
                    cache.put("doc-txt", .init(content: "the text", filename: "doc.txt", fileID: ""))
                    job.s.inside.update { $0 -= 1 }
                    return "the text"
                }
                precondition(text == "the text")
                return nil
            }, Unmanaged.passRetained(Job(shared, i)).toOpaque())
            threads.append(t)
        }
        for t in threads { pthread_join(t, nil) }
        #expect(shared.uploads.get() == 1)
        #expect(shared.most.get() == 1)
        // The lock file goes with its holder.
        #expect(access(dir + "/locks/doc-txt.lock", F_OK) != 0)
    }

    @Test func aWaiterGivesUpAfterItsWaitAndDoesTheWorkItself() throws {
        let dir = Self.freshDir()
        let cache = DocumentCache(directory: dir, maxBytes: 1 << 20)
        // A holder that never finishes: another open file description holds the lock.
        let fd = open(dir + "/locks/slow-txt.lock", O_RDWR | O_CREAT, 0o600)
        #expect(flock(fd, LOCK_EX) == 0)
        let start = Clock.monotonicNanos()
        let ran = cache.exclusively("slow-txt", waitMs: 200) { true }
        let waitedMs = (Clock.monotonicNanos() - start) / 1_000_000
        #expect(ran && waitedMs >= 200)
        close(fd)
    }
}
