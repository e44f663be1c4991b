import Testing
@testable import KimiCore

@Suite struct ChatValidationTests {
    var config: GatewayConfig {
        var c = GatewayConfig()
        c.limits = .init(maxMessages: 3, maxChars: 20, maxTokens: 100)
        return c
    }

    func status(_ body: String) -> Int {
        do {
            _ = try ChatValidation.validate(try JSON.parse(body), config: config)
            return 200
        } catch let e as GatewayError {
            return e.status
        } catch {
            return -1
        }
    }

    @Test func passesUnknownFieldsThroughAndFillsTheModel() throws {
        let r = try ChatValidation.validate(try JSON.parse(#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.30,"x_custom":{"a":1},"partial":true}"#), config: config)
        #expect(r.body.serialized() == #"{"messages":[{"role":"user","content":"hi"}],"temperature":0.30,"x_custom":{"a":1},"partial":true,"model":"moonshot-v1-8k"}"#)
        #expect(!r.stream)
    }

    @Test func streamAndIncludeUsage() throws {
        let r = try ChatValidation.validate(try JSON.parse(#"{"model":"moonshot-v1-32k","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#), config: config)
        #expect(r.stream && r.includeUsage && r.model == "moonshot-v1-32k")
    }

    @Test func rejectsBadInput() throws {
        #expect(status(#"{}"#) == 400) // no messages
        #expect(status(#"{"messages":[]}"#) == 400)
        #expect(status(#"{"messages":"hi"}"#) == 400)
        #expect(status(#"{"messages":[{"role":"wizard","content":"hi"}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":""}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"   "}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user"}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":5}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4"}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"model":7}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#) == 400)
    }

    @Test func enforcesCaps() throws {
        #expect(status(#"{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"123456789012345678901"}]}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":101}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#) == 400)
        #expect(status(#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":100}"#) == 200)
    }

    @Test func partialAssistantPrefixMayBeEmpty() throws {
        #expect(status(#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"","partial":true}]}"#) == 200)
        #expect(status(#"{"messages":[{"role":"assistant","content":""},{"role":"user","content":"hi"}]}"#) == 400)
    }

    @Test func perKeyModelListNarrowsTheAllowList() throws {
        let body = try! JSON.parse(#"{"model":"moonshot-v1-32k","messages":[{"role":"user","content":"hi"}]}"#)
        #expect(throws: GatewayError.self) { try ChatValidation.validate(body, config: config, allowedModels: ["moonshot-v1-8k"]) }
    }
}

@Suite struct AppChatRequestTests {
    @Test func completionBuildsSystemAndUser() throws {
        let b = try AppChatRequest.openAIBody(from: try JSON.parse(#"{"message":"hi","system":"be brief","temperature":0.5,"model":"m"}"#), kind: .completion)
        #expect(b.serialized() == #"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"model":"m","temperature":0.5}"#)
    }

    @Test func streamTakesTextOrMessages() throws {
        let a = try AppChatRequest.openAIBody(from: ["messages": "hi"], kind: .stream)
        #expect(a["messages"]?[0]?["content"] == "hi" && a["stream"] == true)
        let b = try AppChatRequest.openAIBody(from: ["messages": [["role": "user", "content": "x"]]], kind: .stream)
        #expect(b["messages"]?[0]?["content"] == "x")
    }

    @Test func rejectsMissingOrWrongTypes() throws {
        #expect(throws: GatewayError.self) { try AppChatRequest.openAIBody(from: [:], kind: .completion) }
        #expect(throws: GatewayError.self) { try AppChatRequest.openAIBody(from: ["message": 5], kind: .completion) }
        #expect(throws: GatewayError.self) { try AppChatRequest.openAIBody(from: ["message": ""], kind: .completion) }
        #expect(throws: GatewayError.self) { try AppChatRequest.openAIBody(from: ["messages": "x"], kind: .history) }
        #expect(throws: GatewayError.self) { try AppChatRequest.openAIBody(from: ["messages": 1], kind: .stream) }
    }
}
