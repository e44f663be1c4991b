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

    @Test func validityWithoutBuildingAgreesWithTheParser() throws {
        let many = (0..<20).map { "\"k\($0)\":\($0)" }
        let corpus = [
            #"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"Hello."}}],"usage":{"prompt_tokens":12}}"#,
            #"{"a":{"x":1},"b":{"x":2},"c":[{"x":1,"y":2},{"x":3}]}"#, #"{"a":1,"b":{"a":2}}"#,
            #"{"model":"a","model":"b"}"#, #"{"a":{"x":1,"x":2}}"#, #"{"a":1,"\u0061":2}"#, #"{"\u0061":1,"b":2}"#,
            #"{"s":"h\u00e9\n\"q\""}"#, #""\ud83d\ude00""#, #""\ud83d""#, #""\ude00""#, #""\x""#, "\"\u{01}\"", #""日本語""#,
            "{} x", "[1,]", #"{"a":1,}"#, "", " ", "nul", "null", " true ", "01", "1.", "-", "-0.5e+3", "1E5", "[1,2", #"{"a" 1}"#,
            String(repeating: "[", count: 64) + String(repeating: "]", count: 64),
            String(repeating: "[", count: 63) + String(repeating: "]", count: 63),
            "{" + many.joined(separator: ",") + "}", "{" + (many + ["\"k3\":0"]).joined(separator: ",") + "}",
            "{" + (Array(many[0...9]) + ["\"k9\":0"]).joined(separator: ",") + "}",
        ]
        for text in corpus {
            let bytes = Array(text.utf8)
            #expect(JSON.isValid(bytes) == ((try? JSON.parse(bytes)) != nil), "\(text.prefix(60))")
            if let walked = JSON.walk(bytes) { #expect(walked == JSON.isValid(bytes), "\(text.prefix(60))") }
        }
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]] {
            #expect(!JSON.isValid(bytes) && (try? JSON.parse(bytes)) == nil)
        }
    }

    @Test func stringsEndEscapeAndFailAtEveryOffsetOfTheWordScan() throws {
        for k in 0..<20 {
            let pad = String(repeating: "a", count: k)
            #expect(try JSON.parse("\"\(pad)\"") == .string(pad))
            #expect(try JSON.parse("\"\(pad)\\n\(pad)\"") == .string(pad + "\n" + pad))
            #expect(try JSON.parse("\"\(pad)é\(pad)\"") == .string(pad + "é" + pad))
            #expect(throws: JSONParseError.self) { try JSON.parse("\"\(pad)\u{1F}\(pad)\"") }
            #expect(throws: JSONParseError.self) { try JSON.parse(Array("\"\(pad)".utf8) + [0xFF] + Array("\(pad)\"".utf8)) }
            #expect(throws: JSONParseError.self) { try JSON.parse("\"\(pad)") }
            for text in ["\"\(pad)\"", "{\"\(pad)x\":\"\(pad)\\t\"}", "\"\(pad)\u{1F}\"", "[\"\(pad)日本\(pad)\"]"] {
                #expect(JSON.isValid(Array(text.utf8)) == ((try? JSON.parse(text)) != nil), "\(text)")
            }
        }
    }

    @Test func aRelayedAnswerIsCheckedWithoutTheParser() throws {
        // The walk decides an ordinary answer itself (no tree is built for it).
        let answer = #"{"id":"chatcmpl-1","object":"chat.completion","model":"kimi-k2","choices":[{"index":0,"message":{"role":"assistant","content":"你好 \"there\"","tool_calls":[{"id":"t","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#
        #expect(JSON.walk(Array(answer.utf8)) == true)
        #expect(JSON.walk(Array(#"{"a":1,"a":2}"#.utf8)) == false)
        #expect(JSON.walk(Array(#"{"\u0061":1}"#.utf8)) == nil) // an escaped name: the parser decides
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

    @Test func escapesAtEitherEndAndBetweenPlainRunsOfLongAndShortStrings() throws {
        #expect(JSON.string("\"").serialized() == #""\"""#)
        #expect(JSON.string("\tx\\").serialized() == #""\tx\\""#)
        let long = "\u{1}" + String(repeating: "plain é 日本 ", count: 4) + "\"mid\"" + String(repeating: "z", count: 40) + "\n"
        let out = JSON.string(long).serialized()
        #expect(out.hasPrefix(#""\u0001plain é"#) && out.hasSuffix(#"zz\n""#) && out.contains(#"\"mid\""#))
        // Whatever the string, parsing the output gives it back.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let scalars = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                Unicode.Scalar([0x00, 0x09, 0x0A, 0x22, 0x5C, 0x7F, 0x41, 0xE9, 0x65E5, 0x1F600].randomElement(using: &rng)!)!
            }
            let text = String(String.UnicodeScalarView(scalars))
            #expect(try JSON.parse(Array(JSON.string(text).serialized().utf8)) == .string(text))
        }
    }

    @Test func intValueAcceptsIntegralLiterals() throws {
        #expect(JSON.number("12").intValue == 12)
        #expect(JSON.number("1e3").intValue == 1000)
        #expect(JSON.number("1.5").intValue == nil)
    }
}
