import Glibc
import Testing
@testable import KimiCore

/// Issue #9: what the upstream says never carries a credential to a client
/// or a log line, and only known Kimi error types are passed on.
@Suite struct RedactionTests {
    // A made-up key, built from pieces so no line of source looks like a real one.
    let key = "sk-" + "Ab3dEf6hIj9kLm2nOp5q" + "Rs8tUv1wXy4zAb7cDe0fGh3iJk"

    @Test func theKeyAndAnyLongPieceOfItAreRedacted() {
        for leaked in [key, String(key.dropLast()), String(key.dropFirst(3)), String(key.dropFirst(5).prefix(14))] {
            let out = Redaction.scrub("invalid key: \(leaked) given", secrets: [key])
            #expect(!out.contains(leaked), "\(out)")
            #expect(out.contains(Redaction.mark))
        }
    }

    @Test func credentialShapesAreRedactedWithoutKnowingTheSecret() {
        let out = Redaction.scrub("auth Bearer abc.def-ghi and sk-zzzzzzzzzz and tok 9f8e7d6c5b4a39281716a5b4c3d2e1f0 end", secrets: [])
        #expect(!out.contains("abc.def-ghi"))
        #expect(!out.contains("sk-zzzzzzzzzz"))
        #expect(!out.contains("9f8e7d6c5b4a39281716a5b4c3d2e1f0"))
        #expect(out.hasPrefix("auth Bearer [redacted] and [redacted]"))
        #expect(out.hasSuffix(" end"))
    }

    @Test func ordinaryMessagesPassUnchanged() {
        let m = "Invalid request: messages[0].content must not be empty (model moonshot-v1-8k, 8192 tokens)"
        #expect(Redaction.scrub(m, secrets: [key]) == m)
    }

    @Test func unknownErrorTypesBecomeTheGenericOneForTheStatus() {
        #expect(Redaction.kimiType("engine_overloaded_error", status: 429) == "engine_overloaded_error")
        #expect(Redaction.kimiType(key, status: 401) == "invalid_authentication_error")
        #expect(Redaction.kimiType("weird", status: 400) == "invalid_request_error")
        #expect(Redaction.kimiType("", status: 503) == "server_error")
    }

    @Test func anUpstreamErrorEchoingTheKeyReachesNobody() {
        let body = #"{"error":{"type":"\#(key)","message":"Authorization: Bearer \#(String(key.dropLast()))"}}"#
        let e = UpstreamErrorMapping.map(status: 400, body: Array(body.utf8), retryAfter: nil, apiKey: key)
        #expect(!e.message.contains("Ab3dEf6hIj9k") && !e.type.contains("Ab3dEf6hIj9k"))
        let rendered = e.rendered(for: .openAI).body.serialized() + e.sseEvent(for: .app) + e.sseEvent(for: .openAI)
        #expect(!rendered.contains("Ab3dEf6hIj9k"))
    }

    @Test func streamErrorEventsAreRebuilt() throws {
        let chunk = try JSON.parse(#"{"error":{"type":"\#(key)","message":"echo \#(key)"}}"#)
        let e = try #require(UpstreamErrorMapping.streamError(chunk, apiKey: key))
        #expect(!e.message.contains("Ab3dEf6hIj9k") && e.type == "server_error")
        #expect(UpstreamErrorMapping.streamError(try JSON.parse(#"{"choices":[]}"#), apiKey: key) == nil)
    }
}

@Suite struct AnswerSizeTests {
    @Test func theCapFollowsMaxTokensAndChoices() throws {
        var config = GatewayConfig()
        config.limits.maxTokens = 32768
        let one = try ChatValidation.validate(try JSON.parse(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#), config: config)
        #expect(one.answerByteCap == (64 << 10) + 100 * 32)
        let many = try ChatValidation.validate(try JSON.parse(#"{"messages":[{"role":"user","content":"hi"}],"n":4}"#), config: config)
        #expect(many.answerByteCap == (64 << 10) + 4 * 32768 * 32)
    }

    @Test func combiningMarksCountAsCharacters() throws {
        var config = GatewayConfig()
        config.limits.maxChars = 1000
        let text = "a" + String(repeating: "\u{0301}", count: 5000)
        let body: JSON = ["messages": [["role": "user", "content": .string(text)]]]
        #expect(throws: GatewayError.self) { try ChatValidation.validate(body, config: config) }
    }
}

@Suite struct ConfigHardeningTests {
    @Test func restartOnlyKeysKeepTheirRunningValues() {
        let running = GatewayConfig()
        var fresh = running
        fresh.rateLimit.tableSize = running.rateLimit.tableSize * 2
        fresh.rateLimit.policy.maxRequests = 7
        let (kept, refused) = fresh.keepingRestartOnly(from: running)
        #expect(kept.rateLimit.tableSize == running.rateLimit.tableSize)
        #expect(kept.rateLimit.policy.maxRequests == 7) // ordinary keys still reload
        #expect(refused.count == 1 && refused[0].hasPrefix("rateLimit.tableSize"))
    }

    @Test func batchSchedulingIsOnByDefaultCanBeTurnedOffAndWaitsForARestart() throws {
        #expect(try ConfigSource(path: nil, processEnv: [:]).load().server.batchScheduling)
        let off = try GatewayConfig.parse(fileBytes: Array(#"{"server":{"batchScheduling":false}}"#.utf8))
        #expect(!off.server.batchScheduling)
        #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"server":{"batchScheduling":"yes"}}"#.utf8)) }
        let (kept, refused) = off.keepingRestartOnly(from: GatewayConfig())
        #expect(kept.server.batchScheduling && refused == ["server.batchScheduling (false → kept true)"])
    }

    @Test func aFIFOAtTheConfigPathIsRefusedWithoutBlocking() throws {
        var t = Array("/tmp/kimi-fifo-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&t)!)
        let fifo = dir + "/gateway.json"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(FileIO.read(fifo) == nil) // returns at once: nobody writes to it
        #expect(FileIO.unreadableReason(fifo) == "not a regular file")
        #expect(throws: ConfigError.self) { try ConfigSource(path: fifo, processEnv: [:]).load() }
    }

    @Test func theDefaultLimiterFileIsInAPrivateDirectoryNeverBareTmp() throws {
        let c = try ConfigSource(path: nil, processEnv: [:]).load()
        #expect(c.rateLimit.file.hasSuffix("/ratelimit.bin"))
        #expect(!c.rateLimit.file.hasPrefix("/tmp/kimi-gateway-ratelimit"))
        let dir = String(c.rateLimit.file.dropLast("/ratelimit.bin".count))
        #expect(dir != "/tmp")
    }
}

@Suite struct HeaderSafetyTests {
    @Test func aControlOrNonASCIIByteMakesAValueUnsafeAtEveryOffsetOfTheWordScan() {
        for length in 0..<20 {
            let plain = [UInt8](repeating: UInt8(ascii: "a"), count: length)
            #expect(plain.withUnsafeBufferPointer { HeaderSafety.isSafe($0) })
            for k in 0..<length {
                for bad: UInt8 in [0x00, 0x0A, 0x0D, 0x1F, 0x7F, 0x80, 0xFF] {
                    var v = plain
                    v[k] = bad
                    #expect(!v.withUnsafeBufferPointer { HeaderSafety.isSafe($0) }, "byte \(bad) at \(k) of \(length)")
                }
                var tabbed = plain
                tabbed[k] = 0x09
                tabbed[length - 1 - k] = 0x20
                #expect(tabbed.withUnsafeBufferPointer { HeaderSafety.isSafe($0) }, "tab at \(k) of \(length)")
            }
        }
        #expect(HeaderSafety.isSafe("max-age=31536000; includeSubDomains ~") && !HeaderSafety.isSafe("a\r\nSet-Cookie: x"))
    }
}
