import Testing
@testable import KimiCore

@Suite struct JSONTests {
    @Test func roundTripKeepsOrderAndNumberText() throws {
        let text = #"{"z":1,"a":[true,false,null],"t":0.70,"e":1e-3,"s":"h\u00e9\n\"q\""}"#
        let v = try JSON.parse(text)
        #expect(v.serialized() == #"{"z":1,"a":[true,false,null],"t":0.70,"e":1e-3,"s":"hé\n\"q\""}"#)
        #expect(v["t"] == .number("0.70"))
    }

    @Test func rejectsTrailingGarbageAndCommas() throws {
        for bad in ["{} x", "[1,]", #"{"a":1,}"#, "", "nul", "01", "1.", "-", #""\x""#, "\"\u{01}\""] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSON.parse(bad) }
        }
    }

    @Test func rejectsDuplicateMembers() throws {
        #expect(throws: JSONParseError.self) { try JSON.parse(#"{"model":"a","model":"b"}"#) }
        // Past the members scanned one by one, and within them.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }
        #expect(try JSON.parse("{" + many.joined(separator: ",") + "}")["k39"] == .number("39"))
        for dup in [3, 15, 16, 17, 39] {
            #expect(throws: JSONParseError.self, "k\(dup) twice") { try JSON.parse("{" + (many + ["\"k\(dup)\":0"]).joined(separator: ",") + "}") }
            #expect(throws: JSONParseError.self) { try JSON.parse("{" + (Array(many[0...dup]) + ["\"k\(dup)\":0"]).joined(separator: ",") + "}") }
        }
    }

    @Test func boundsNestingDepth() throws {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let ok = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        #expect((try? JSON.parse(ok)) != nil)
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try JSON.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(throws: JSONParseError.self) { try JSON.parse(#""\ud83d""#) }
    }

    @Test func rejectsInvalidUTF8() throws {
        #expect(throws: JSONParseError.self) { try JSON.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func escapesControlCharactersSoOutputIsOneLine() throws {
        let s = JSON.string("a\nb\r\u{0}\u{7f}").serialized()
        #expect(!s.contains("\n") && !s.contains("\r"))
        #expect(s == #""a\nb\r\u0000\u007f""#)
    }

    @Test func intValueAcceptsIntegralLiterals() throws {
        #expect(JSON.number("12").intValue == 12)
        #expect(JSON.number("1e3").intValue == 1000)
        #expect(JSON.number("1.5").intValue == nil)
    }
}
