import Testing
@testable import KimiCore

@Suite struct SSEParserTests {
    func parse(_ pieces: [String]) throws -> [SSEParser.Event] {
        var p = SSEParser()
        var out: [SSEParser.Event] = []
        for piece in pieces { out += try p.feed(Array(piece.utf8)) }
        return out
    }

    @Test func eventsSplitAcrossReads() throws {
        let e = try parse(["da", "ta: {\"a\"", ":1}\n", "\n", "data: x\n\n"])
        #expect(e.map(\.data) == [#"{"a":1}"#, "x"])
    }

    @Test func crlfEvenWhenSplitBetweenCRAndLF() throws {
        let e = try parse(["data: a\r", "\n\r", "\ndata: b\r\r"])
        #expect(e.map(\.data) == ["a", "b"])
    }

    @Test func commentsAreSkipped() throws {
        var p = SSEParser()
        let e = try p.feed(Array(": keep-alive\n\ndata: x\n\n".utf8))
        #expect(e.map(\.data) == ["x"] && p.commentCount == 1)
    }

    @Test func multiLineDataJoinsWithLF() throws {
        #expect(try parse(["data: a\ndata:b\ndata\n\n"]).map(\.data) == ["a\nb\n"])
    }

    @Test func eventAndIDFields() throws {
        let e = try parse(["event: done\nid: 7\ndata: [DONE]\n\n"])
        #expect(e == [.init(event: "done", data: "[DONE]", id: "7")])
    }

    @Test func dataLinesWithoutABlankLineFailAtTheEventCap() throws {
        var p = SSEParser(maxEventBytes: 64)
        #expect(throws: SSEParser.Overflow.self) {
            for _ in 0..<100 { _ = try p.feed(Array("data: 0123456789\n".utf8)) }
        }
    }

    @Test func theEventCapResetsAfterEachEvent() throws {
        var p = SSEParser(maxEventBytes: 64)
        for _ in 0..<100 { #expect(try p.feed(Array("data: 0123456789\n\n".utf8)).count == 1) }
    }

    @Test func overlongLineFails() throws {
        var p = SSEParser(maxEventBytes: 8)
        #expect(throws: SSEParser.Overflow.self) { try p.feed(Array("data: 0123456789".utf8)) }
    }

    @Test func framingSplitsMultiLineText() throws {
        #expect(SSEFrame.data("a\nb") == "data: a\ndata: b\n\n")
        #expect(SSEFrame.json(["content": "x\ny"]) == "data: {\"content\":\"x\\ny\"}\n\n")
    }
}

@Suite struct UsageTests {
    @Test func readsMoonshotAndOpenAIPlaces() throws {
        let moonshot = try JSON.parse(#"{"choices":[{"delta":{},"usage":{"prompt_tokens":1,"completion_tokens":2}}]}"#)
        let openai = try JSON.parse(#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#)
        #expect(Usage.find(in: moonshot)?["completion_tokens"] == 2)
        #expect(Usage.find(in: openai)?["prompt_tokens"] == 3)
        #expect(Usage.find(in: ["choices": [["delta": ["content": "x"]]]]) == nil)
    }

    @Test func aCompletionsUsageIsScannedFromItsTextForTheLogWord() throws {
        let body = Array(#"{"choices":[{"message":{"content":"\"usage\": {no}"}}],"usage": {"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#.utf8)
        let u = try #require(Usage.scan(body))
        #expect(Usage.logWord(u) == "tokens=12+2")
        #expect(Usage.logWord(["total_tokens": 3]) == "tokens=0+0")
        #expect(Usage.scan(Array(#"{"choices":[]}"#.utf8)) == nil)
    }

    @Test func theFinalChunkIsOpenAIsShape() throws {
        let moonshot = try JSON.parse(#"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"usage":{"total_tokens":3}}]}"#)
        let final = Usage.finalChunk(from: moonshot, usage: try #require(Usage.find(in: moonshot)))
        #expect(final.serialized() == #"{"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"total_tokens":3}}"#)
    }
}

@Suite struct UpstreamErrorMappingTests {
    func map(_ status: Int, _ body: String = #"{"error":{"type":"content_filter","message":"m"}}"#, retry: String? = nil) -> GatewayError {
        UpstreamErrorMapping.map(status: status, body: Array(body.utf8), retryAfter: retry, apiKey: "sk-secret")
    }

    @Test func table() throws {
        #expect(map(400).status == 400 && map(400).message == "m" && map(400).type == "content_filter")
        #expect(map(401).status == 502 && map(401).message == "upstream authentication failed")
        #expect(map(403).status == 502)
        #expect(map(429, retry: "5").status == 429)
        #expect(map(429, retry: "5").extraHeaders.contains { $0 == ("Retry-After", "5") })
        #expect(map(500).status == 502 && map(503).status == 502)
        #expect(UpstreamErrorMapping.map(.connect("refused")).status == 502)
        #expect(UpstreamErrorMapping.map(.timeout("slow")).status == 504)
    }

    @Test func neverLeaksTheKey() throws {
        let e = map(400, #"{"error":{"type":"t","message":"bad key sk-secret here"}}"#)
        #expect(!e.message.contains("sk-secret"))
    }

    @Test func nonJSONBodyStillMaps() throws {
        #expect(map(502, "<html>bad gateway</html>").status == 502)
    }
}

@Suite struct UsageScanTests {
    @Test func findsTheTopLevelUsageWithoutParsingTheAnswer() throws {
        let body = Array(#"{"id":"x","choices":[{"message":{"content":"a \"usage\": {fake}"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#.utf8)
        #expect(Usage.scan(body)?["completion_tokens"] == 7)
    }

    @Test func noUsageIsNil() throws {
        #expect(Usage.scan(Array(#"{"id":"x"}"#.utf8)) == nil)
        #expect(Usage.scan(Array(#"{"usage":{"unterminated":1"#.utf8)) == nil)
    }
}

@Suite struct ByteSearchTests {
    @Test func findsBytesWhereTheyAreAndOnlyThere() {
        #expect(#"{"id":"x","usage":{"total_tokens":3}}"#.containsBytes("\"usage\""))
        #expect(!#"{"id":"x","choices":[]}"#.containsBytes("\"usage\""))
        #expect(!"".containsBytes("\"error\""))
        #expect(!"\"err".containsBytes("\"error\""))
        #expect("日本語 \"error\" ✓".containsBytes("\"error\""))
        #expect("\"error\"".containsBytes("\"error\""))
    }
}

@Suite struct SSEFrameTests {
    @Test func aDataFrameIsOneLineOrOneLinePerLineOfText() {
        #expect(SSEFrame.data(#"{"a":"日本"}"#) == "data: {\"a\":\"日本\"}\n\n")
        #expect(SSEFrame.data("") == "data: \n\n")
        #expect(SSEFrame.data("one\ntwo\r\nthree") == "data: one\ndata: two\ndata: three\n\n")
        #expect("a\rb".containsLineBreak && "a\nb".containsLineBreak && !"ab".containsLineBreak && !"".containsLineBreak)
    }

    @Test func aMatchFollowedByTheStopByteDoesNotCount() {
        #expect(#"{"content":"hi"}"#.containsBytes(#"content":""#, notFollowedBy: 0x22))
        #expect(!#"{"content":""}"#.containsBytes(#"content":""#, notFollowedBy: 0x22))
        #expect(#"{"content":"","reasoning_content":"x"}"#.containsBytes(#"content":""#, notFollowedBy: 0x22))
        #expect(!#"{"content":""#.containsBytes(#"content":""#, notFollowedBy: 0x22), "nothing follows")
    }
}
