import Testing
@testable import KimiCore

/// Issue #11: the models a client may use, and the compatibility gaps real
/// clients hit (OpenAI SDKs in browsers, `developer`, Node-era stream clients).
@Suite struct ModelCatalogueTests {
    let upstream = try! JSON.parse(#"""
    {"object":"list","data":[
      {"id":"moonshot-v1-8k","object":"model"},
      {"id":"kimi-k2.6","object":"model","context_length":262144},
      {"id":"kimi-next","object":"model","context_length":1000000},
      {"id":"moonshot-v1-32k","object":"model"}]}
    """#)

    @Test func byDefaultEveryModelTheUpstreamListsIsAllowed() {
        let c = ModelCatalogue.make(upstreamList: upstream, config: GatewayConfig())
        #expect(c.source == .upstream)
        #expect(c.models.map(\.id) == ["moonshot-v1-8k", "kimi-k2.6", "kimi-next", "moonshot-v1-32k"])
        // Context: the upstream's, else the built-in table.
        #expect(c.models.map(\.contextLength) == [8192, 262144, 1_000_000, 32768])
    }

    @Test func configuredModelsNarrowTheUpstreamsListInTheOperatorsOrder() throws {
        let config = try GatewayConfig.parse(fileBytes: Array(#"{"upstream":{"models":["moonshot-v1-32k",{"id":"kimi-next","contextLength":500000},"gone-model"],"defaultModel":"moonshot-v1-32k"}}"#.utf8))
        let c = ModelCatalogue.make(upstreamList: upstream, config: config)
        #expect(c.models == [.init(id: "moonshot-v1-32k", contextLength: 32768), .init(id: "kimi-next", contextLength: 500000)])
    }

    @Test func withoutTheUpstreamsListTheConfiguredModelsElseTheBuiltInTable() throws {
        #expect(ModelCatalogue.make(upstreamList: nil, config: GatewayConfig()).models == KimiModels.catalogue)
        let config = try GatewayConfig.parse(fileBytes: Array(#"{"upstream":{"models":["moonshot-v1-8k"]}}"#.utf8))
        let c = ModelCatalogue.make(upstreamList: nil, config: config)
        #expect(c.source == .fallback && c.models.map(\.id) == ["moonshot-v1-8k"])
    }

    @Test func aKeysOwnModelsNarrowFurtherAndTheOpenAIListShowsOnlyThose() {
        let c = ModelCatalogue.make(upstreamList: upstream, config: GatewayConfig())
        let key = GatewayConfig.APIKey(sha256: "", name: "k", models: ["kimi-k2.6", "not-listed"])
        #expect(c.models(for: key).map(\.id) == ["kimi-k2.6"])
        let list = c.openAIList(for: key)
        #expect(list["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["kimi-k2.6"])
        #expect(list["data"]?[0]?["context_length"] == 262144) // the upstream's own entry
        #expect(c.openAIList(for: nil)["data"]?.arrayValue?.count == 4)
    }

    @Test func withoutConfiguredModelsTheDefaultModelAndKeyModelsAreCheckedAtRunTime() throws {
        // Valid: the upstream's list decides which models exist.
        _ = try GatewayConfig.parse(fileBytes: Array(#"{"upstream":{"defaultModel":"kimi-k2.6"},"auth":{"keys":[{"key":"k","models":["kimi-next"]}]}}"#.utf8)).validated()
    }
}

@Suite struct CompatibilityTests {
    @Test func developerIsAcceptedAndSentUpstreamAsSystem() throws {
        let chat = try ChatValidation.validate(try JSON.parse(#"{"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"}]}"#), config: GatewayConfig())
        #expect(chat.modified && chat.body["messages"]?[0]?["role"] == "system")
    }

    @Test func aToolMessageMayBeEmpty() throws {
        let body = #"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":""},{"role":"user","content":"and?"}]}"#
        _ = try ChatValidation.validate(try JSON.parse(body), config: GatewayConfig())
    }

    @Test func preflightsAllowTheHeadersTheOpenAIJSSDKSends() {
        let requested = "content-type, authorization, x-stainless-os, X-Stainless-Retry-Count, x-stainless-timeout, openai-organization, x-evil, x-stainless-bad header"
        let h = CORS.preflightHeaders(methods: ["POST", "OPTIONS"], maxAge: 600, requested: requested)
        let allowed = h.first { $0.0 == "Access-Control-Allow-Headers" }?.1 ?? ""
        for name in ["x-stainless-os", "x-stainless-retry-count", "x-stainless-timeout", "openai-organization", "Authorization"] {
            #expect(allowed.contains(name), "\(name)")
        }
        #expect(!allowed.contains("x-evil") && !allowed.contains("bad header"))
    }

    @Test func vitesDevServerIsADefaultOrigin() {
        #expect(GatewayConfig().cors.allowedOrigins.contains("http://localhost:5173"))
    }

    @Test func originsWithAPathOrATrailingSlashAreRefused() {
        for origin in ["https://app.example.com/", "https://app.example.com/app"] {
            #expect(throws: ConfigError.self) {
                _ = try GatewayConfig.parse(fileBytes: Array(#"{"cors":{"allowedOrigins":["\#(origin)"]}}"#.utf8)).validated()
            }
        }
    }

    @Test func noUpstreamKeyOutsideTheSimulatorIsAWarning() throws {
        #expect(GatewayConfig().warnings().first?.contains("upstream.apiKey is not set") == true)
        var simulated = GatewayConfig()
        simulated.upstream.simulated = true
        #expect(simulated.warnings().isEmpty)
    }

    @Test func appStreamExtrasAreOptIn() throws {
        #expect(try AppChatRequest.streamExtras(["messages": "hi"]).isEmpty)
        #expect(try AppChatRequest.streamExtras(["include": ["usage", "reasoning"]]) == [.usage, .reasoning])
        #expect(throws: GatewayError.self) { try AppChatRequest.streamExtras(["include": ["everything"]]) }
        #expect(throws: GatewayError.self) { try AppChatRequest.streamExtras(["include": "usage"]) }
    }
}

@Suite struct KimiLineUpTests {
    @Test func todaysModelsAreBuiltInAndDiscontinuedOnesAreNot() {
        let ids = KimiModels.catalogue.map(\.id)
        for id in ["kimi-k3", "kimi-k2.7-code", "kimi-k2.7-code-highspeed", "kimi-k2.6", "kimi-k2.5", "moonshot-v1-8k", "moonshot-v1-auto"] {
            #expect(ids.contains(id), "\(id)")
        }
        for id in ["kimi-k2-thinking", "kimi-k2-turbo-preview", "kimi-latest", "kimi-k2-0905-preview", "kimi-k2-0711-preview"] {
            #expect(!ids.contains(id), "\(id)")
        }
        #expect(KimiModels.contextLength("kimi-k3") == 1_048_576 && KimiModels.contextLength("kimi-k3-preview") == 1_048_576)
    }

    @Test func whichModelsReason() {
        #expect(KimiModels.reasons("kimi-k3", body: ["reasoning_effort": "low"]))
        #expect(KimiModels.reasons("kimi-k2.7-code-highspeed", body: [:]))
        #expect(KimiModels.reasons("kimi-k2.6", body: [:]) && !KimiModels.reasons("kimi-k2.6", body: ["thinking": ["type": "disabled"]]))
        #expect(!KimiModels.reasons("moonshot-v1-8k", body: [:]) && !KimiModels.reasons("kimi-k2.5", body: [:]))
    }
}

@Suite struct DocumentChatTests {
    let models = KimiModels.catalogue

    @Test func autoPicksTheSmallestContextThatHoldsPromptAndAnswer() {
        #expect(DocumentChat.pickModel(promptTokens: 2_500, answerTokens: 4096, among: models) == .model("moonshot-v1-8k"))
        #expect(DocumentChat.pickModel(promptTokens: 20_000, answerTokens: 4096, among: models) == .model("moonshot-v1-32k"))
        #expect(DocumentChat.pickModel(promptTokens: 100_000, answerTokens: 4096, among: models) == .model("moonshot-v1-128k"))
        #expect(DocumentChat.pickModel(promptTokens: 200_000, answerTokens: 4096, among: models) == .model("kimi-k2.6"))
        #expect(DocumentChat.pickModel(promptTokens: 300_000, answerTokens: 4096, among: models) == .model("kimi-k3"))
        #expect(DocumentChat.pickModel(promptTokens: 2_000_000, answerTokens: 4096, among: models) == .tooLong(largestContext: 1_048_576))
        // Exactly full is enough; one more is not.
        #expect(DocumentChat.pickModel(promptTokens: 8192 - 4096, answerTokens: 4096, among: models) == .model("moonshot-v1-8k"))
        #expect(DocumentChat.pickModel(promptTokens: 8192 - 4095, answerTokens: 4096, among: models) == .model("moonshot-v1-32k"))
    }

    @Test func onlyAllowedModelsAreCandidatesAndAutoRoutersAreSkipped() {
        let narrow = models.filter { ["moonshot-v1-auto", "moonshot-v1-32k"].contains($0.id) }
        #expect(DocumentChat.pickModel(promptTokens: 10, answerTokens: 10, among: narrow) == .model("moonshot-v1-32k"))
        #expect(DocumentChat.pickModel(promptTokens: 10, answerTokens: 10, among: []) == .tooLong(largestContext: 0))
    }

    @Test func theDocumentIsASystemMessageOfItsOwnBeforeTheHistory() {
        let m = DocumentChat.messages(document: "DOC", system: "be brief", history: [["role": "user", "content": "a"], ["role": "assistant", "content": "b"]], message: "q")
        #expect(m.map { $0["role"]?.stringValue ?? "" } == ["system", "system", "user", "assistant", "user"])
        #expect(m[1]["content"] == "DOC" && m[4]["content"] == "q")
        #expect(DocumentChat.messages(document: "DOC", system: nil, history: [], message: "q").count == 2)
    }
}

@Suite struct DocumentCacheKeyTests {
    @Test func theKeyCoversTheBytesAndTheDeclaredType() {
        let h = String(repeating: "ab", count: 32)
        #expect(DocumentChat.cacheKey(sha256: h, filename: "notes.txt") == h + "-txt")
        #expect(DocumentChat.cacheKey(sha256: h, filename: "Report.PDF") == h + "-pdf")
        #expect(DocumentChat.cacheKey(sha256: h, filename: "notes.txt") != DocumentChat.cacheKey(sha256: h, filename: "report.pdf"))
        #expect(DocumentChat.cacheKey(sha256: h, filename: "no-extension") == h + "-none")
        #expect(DocumentChat.cacheKey(sha256: h, filename: "x.t/../../etc") == h + "-none")
        #expect(DocumentChat.cacheKey(sha256: h, filename: "weird.t x") == h + "-none")
    }
}
