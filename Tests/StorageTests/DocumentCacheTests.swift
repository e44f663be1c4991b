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
}
