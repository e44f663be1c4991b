import Testing
@testable import KimiCore

@Suite struct MultipartParserTests {
    static let type = "multipart/form-data; boundary=XyZ-42"
    static let body = Array((
        "preamble to ignore\r\n--XyZ-42\r\n"
        + "Content-Disposition: form-data; name=\"purpose\"\r\n\r\nfile-extract\r\n--XyZ-42\r\n"
        + "Content-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\n"
        + "line one\r\n--XyZ-4 almost a boundary\r\nline three\r\n--XyZ-42--\r\nepilogue"
    ).utf8)

    /// Data events joined per part, the way a consumer sees them.
    static func parts(_ events: [MultipartParser.Event]) -> [(MultipartParser.Part, String)] {
        var out: [(MultipartParser.Part, String)] = []
        for e in events {
            switch e {
            case let .begin(p): out.append((p, ""))
            case let .data(d): out[out.count - 1].1 += String(decoding: d, as: UTF8.self)
            case .end: break
            }
        }
        return out
    }

    @Test func partsWithTheirFieldsFilenamesAndContent() throws {
        var p = try #require(MultipartParser(contentType: Self.type))
        let got = Self.parts(try p.feed(Self.body))
        #expect(p.isComplete)
        #expect(got.map(\.0.name) == ["purpose", "file"])
        #expect(got[0].1 == "file-extract")
        #expect(got[1].0.filename == "notes.txt" && got[1].0.contentType == "text/plain")
        #expect(got[1].1 == "line one\r\n--XyZ-4 almost a boundary\r\nline three")
    }

    @Test func everySplitPointGivesTheSameParts() throws {
        var whole = try #require(MultipartParser(contentType: Self.type))
        let expected = Self.parts(try whole.feed(Self.body)).map { "\($0.0.name)=\($0.1)" }
        for cut in 1..<Self.body.count {
            var p = try #require(MultipartParser(contentType: Self.type))
            let events = try p.feed(Array(Self.body[..<cut])) + (try p.feed(Array(Self.body[cut...])))
            #expect(Self.parts(events).map { "\($0.0.name)=\($0.1)" } == expected, "cut at \(cut)")
            #expect(p.isComplete)
        }
    }

    @Test func contentIsPassedOnAsItArrivesNotHeldWhole() throws {
        var p = try #require(MultipartParser(contentType: "multipart/form-data; boundary=b"))
        _ = try p.feed(Array("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n".utf8))
        let chunk = [UInt8](repeating: 0x61, count: 64 << 10)
        var seen = 0
        for _ in 0..<16 {
            for case let .data(d) in try p.feed(chunk) { seen += d.count }
        }
        #expect(seen > 15 * (64 << 10)) // all but a delimiter-sized tail, before the end arrives
        for case let .data(d) in try p.feed(Array("\r\n--b--".utf8)) { seen += d.count }
        #expect(seen == 16 * (64 << 10) && p.isComplete)
    }

    @Test func theBoundaryComesFromTheContentTypeQuotedOrNot() {
        #expect(MultipartParser(contentType: "multipart/form-data; boundary=\"a b\"") != nil)
        #expect(MultipartParser(contentType: "multipart/form-data") == nil)
        #expect(MultipartParser(contentType: "application/json; boundary=x") == nil)
        #expect(MultipartParser(contentType: "multipart/form-data; boundary=" + String(repeating: "x", count: 71)) == nil)
    }

    @Test func malformedBodiesAreErrorsNotCrashes() throws {
        for bad in ["--b\r\nno colon here\r\n\r\nx\r\n--b--",
                    "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
                    "--bX\r\n"] {
            var p = try #require(MultipartParser(contentType: "multipart/form-data; boundary=b"))
            #expect(throws: MultipartParser.Malformed.self, "\(bad)") { _ = try p.feed(Array(bad.utf8)) }
        }
        var p = try #require(MultipartParser(contentType: "multipart/form-data; boundary=b"))
        #expect(throws: MultipartParser.Malformed.self) {
            _ = try p.feed(Array(("--b\r\nContent-Disposition: form-data; name=\"a\"\r\nX: " + String(repeating: "y", count: 20_000)).utf8))
        }
    }
}
