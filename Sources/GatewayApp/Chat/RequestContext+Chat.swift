import KimiCore

extension RequestContext {
    /// The chat request validated against the models this request may use
    /// (the upstream's list, narrowed by the config and the key), its model
    /// noted for the access log, and admitted under the key's budget and
    /// token limit.
    func validatedChat(_ openAIBody: JSON, services: Services) throws -> ChatRequest {
        let chat = try ChatValidation.validateShape(openAIBody, config: config)
        let catalogue = services.models.catalogue(config: config, budget: services.buffers, lookingFor: chat.model)
        try ChatValidation.checkModel(chat.model, allowed: catalogue.models(for: apiKey).map(\.id))
        logNotes.append("model=\(HeaderSafety.printable(chat.model, max: 60))")
        try admitChat(UsageCapture(model: chat.model, stream: chat.stream, promptCharacters: chat.characters),
                      completionTokens: chat.maxTokens, choices: chat.choices, services: services)
        return chat
    }

    /// The last gate before the upstream (issue #12): the key's budget,
    /// then the token limit's reservation — prompt estimate + `max_tokens`
    /// per choice (`rateLimit.completionReserveTokens` when none is named),
    /// settled with the actual usage when the request ends
    /// (`Services.recordUsage`). Refused: 429, nothing goes upstream, no
    /// ledger row. Admitted: the request's usage is captured from here on.
    func admitChat(_ capture: UsageCapture, completionTokens: Int?, choices: Int, services: Services) throws {
        if let key = apiKey, let budget = key.budget {
            guard let book = services.usage else {
                throw GatewayError.storageUnavailable("Usage storage is unavailable (\(services.usageProblem)); budgets cannot be checked")
            }
            let nowMs = Clock.wallMicros() / 1000
            if let (message, retryAfter) = BudgetCheck.refusal(budget: budget, spent: services.spent(key: key, book: book, config: config, nowMs: nowMs), now: nowMs) {
                logNotes.append("budget-exhausted")
                metricsNotes.rateLimited = "budget"
                throw GatewayError.quotaExceeded(message, retryAfter: retryAfter)
            }
        }
        let perMinute = apiKey?.tokensPerMinute ?? config.rateLimit.tokensPerMinute
        if config.rateLimit.enabled, perMinute > 0 {
            let policy = TokenGCRA(tokensPerMinute: perMinute)
            let tokens = UsageCapture.estimatedPromptTokens(characters: capture.promptCharacters)
                + max(1, choices) * (completionTokens ?? config.rateLimit.completionReserveTokens)
            let key = RateLimiter.key(client: clientIdentity, policy: apiKey?.tokensPerMinute != nil
                ? ASCIIText.build(capacity: apiKey!.name.utf8.count + 32) { $0.text("tokens-key-"); $0.text(apiKey!.name); $0.byte(0x3A); $0.number(perMinute) }
                : ASCIIText.build(capacity: 32) { $0.text("tokens:"); $0.number(perMinute) })
            let now = Clock.wallMicros()
            let d = services.limiter.reserve(key: key, tokens: tokens, policy: policy, config: config, now: now)
            RateLimitHeaders.addTokens(to: &responseHeaders, policy: policy, decision: d)
            if d.tooLarge { throw GatewayError.tooLargeForTokenLimit(tokens: tokens, limit: policy.limit) }
            guard d.allowed else {
                logNotes.append("token-limited")
                metricsNotes.rateLimited = "tokens"
                throw GatewayError.tokensLimited(retryAfter: d.retryAfterSeconds, tokens: tokens, limit: policy.limit)
            }
            capture.reservation = .init(key: key, tokens: tokens, policy: policy)
        }
        usage = capture
    }
}
