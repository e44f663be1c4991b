import KimiCore

extension RequestContext {
    /// The chat request validated against the models this request may use
    /// (the upstream's list, narrowed by the config and the key), its model
    /// noted for the access log, and admitted under the key's budget and
    /// token limit.
    func validatedChat(_ openAIBody: JSON, services: Services) throws -> ChatRequest {
        var chat = try ChatValidation.validateShape(openAIBody, config: config)
        let catalogue = services.models.catalogue(config: config, budget: services.buffers, lookingFor: chat.model)
        let allowed = catalogue.models(for: apiKey)
        try ChatValidation.checkModel(chat.model, allowed: allowed.map(\.id))
        try checkFileReferences(chat.body, services: services)
        logNotes.append("model=\(HeaderSafety.printable(chat.model, max: 60))")
        let context = allowed.first { $0.id == chat.model }?.contextLength ?? KimiModels.contextLength(chat.model)
        let completion = chat.maxTokens ?? config.limits.maxTokens
        if let cap = try admitChat(UsageCapture(model: chat.model, stream: chat.stream, promptTokens: chat.promptTokens,
                                                tokenBound: context.addingSaturated(max(1, chat.choices) * completion)),
                                   completionTokens: chat.maxTokens, choices: chat.choices, services: services)
        {
            // What is left of the budget bounds the answer (the upstream obeys `max_tokens`).
            chat.body = chat.body.setting("max_tokens", .number(cap))
            chat.modified = true
            chat.maxTokens = cap
            chat.answerByteCap = ChatRequest.answerByteCap(maxTokens: cap, choices: chat.choices)
            logNotes.append("max_tokens-capped=\(cap)")
        }
        return chat
    }

    /// The last gate before the upstream: the reservations of every limit
    /// that requests in flight could overshoot, each of the request's worst
    /// case — prompt estimate (`PromptEstimate`) + max tokens per choice
    /// (`rateLimit.completionReserveTokens` when none is named) — in shared
    /// state, settled with the actual usage when the request ends
    /// (`Services.recordUsage`): the key's budgets (day, month), then the
    /// token limit. Refused: 429, nothing goes upstream, no ledger row, and
    /// what was already reserved is given back. Admitted: the request's
    /// usage is captured from here on.
    ///
    /// A request that names no max tokens reserves
    /// `rateLimit.completionReserveTokens` per choice; when a budget has less
    /// room than that, it reserves what is left instead and the returned
    /// cap goes upstream as its `max_tokens`, so the answer stops where the
    /// budget does (a budget of 600 with 500 left serves a 500-token answer
    /// rather than refusing a 1,024-token reservation).
    ///
    /// `dryRun`: the same decisions, nothing reserved or captured — a
    /// preflight with the smallest the request can reserve (the document
    /// route, before it uploads anything: what the preflight refuses the
    /// real admission would refuse too).
    ///
    /// Money budgets (`costPerDay`, `costPerMonth`) reserve the request's
    /// worst cost at its model's price (`Price.worstMicros`: no cache hit)
    /// and settle with its cost (cached prompt tokens at the cached price);
    /// a key with one may only use models with a price (403 otherwise).
    func admitChat(_ capture: UsageCapture, completionTokens: Int?, choices: Int, services: Services, dryRun: Bool = false) throws -> Int? {
        let choices = max(1, choices)
        var completion = completionTokens ?? config.rateLimit.completionReserveTokens
        var cap: Int?
        var periods: [BudgetPeriod] = []
        let nowMs = Clock.wallMicros() / 1000
        let price = config.upstream.price(for: capture.model)
        if let key = apiKey, let budget = key.budget {
            guard let book = services.usage else {
                throw GatewayError.storageUnavailable("Usage storage is unavailable (\(services.usageProblem)); budgets cannot be checked")
            }
            if budget.hasCost, price == nil, !(dryRun && capture.model.isEmpty) {
                throw GatewayError.forbidden("Model \"\(HeaderSafety.printable(capture.model, max: 60))\" has no price in upstream.prices, and this key has a cost budget: it may only use priced models")
            }
            let spent = services.spent(key: key, book: book, config: config, nowMs: nowMs)
            let limits: [(BudgetCounter.Kind, BudgetCounter.Measure, Int?, Int)] = [
                (.month, .tokens, budget.tokensPerMonth, spent.month.totalTokens), (.day, .tokens, budget.tokensPerDay, spent.day.totalTokens),
                (.month, .costMicros, budget.costPerMonth.map(BudgetCheck.micros), spent.month.costMicros),
                (.day, .costMicros, budget.costPerDay.map(BudgetCheck.micros), spent.day.costMicros),
            ]
            for (kind, measure, limit, baseline) in limits {
                guard let limit else { continue }
                periods.append(BudgetPeriod(kind: kind, measure: measure, limit: limit, baseline: baseline,
                                            key: BudgetCounter.slotKey(fingerprint: key.fingerprint, kind: kind, measure: measure),
                                            period: BudgetCounter.period(kind, at: nowMs)))
            }
            if completionTokens == nil {
                // The most completion tokens per choice what is left of every budget allows.
                let fit = periods.map { p in
                    let word = services.limiter.update(key: p.key, config: config, now: nowMs * 1000) { w in (nil, w) }
                    let left = p.limit - max(BudgetCounter.count(word, period: p.period), p.baseline)
                    guard p.measure == .costMicros, let price else { return (left - capture.promptTokens) / choices }
                    let perToken = max(price.output, 1e-9) // millionths per output token (the price is per million)
                    return Int((Double(left - price.worstMicros(prompt: capture.promptTokens, completion: 0)) / perToken / Double(choices)).rounded(.down))
                }.min() ?? .max
                if fit >= 1, fit < completion { (completion, cap) = (fit, fit) }
            }
        }
        let tokens = capture.promptTokens.addingSaturated(choices * completion)
        // Unpriced here only in a preflight of no model yet (the document
        // route's "auto"): the least it can cost is more than nothing.
        let worstMicros = price?.worstMicros(prompt: capture.promptTokens, completion: choices * completion) ?? 1
        if !dryRun { (capture.reservedTokens, capture.price) = (tokens, price) }
        for p in periods {
            let amount = p.measure == .tokens ? tokens : worstMicros
            let reservation = UsageCapture.BudgetReservation(key: p.key, period: p.period, measure: p.measure, amount: amount)
            let d = services.limiter.update(key: reservation.key, config: config, now: nowMs * 1000) { word in
                let (new, d) = BudgetCounter.reserve(word: word, period: reservation.period, baseline: p.baseline, tokens: amount, limit: p.limit)
                return (dryRun ? nil : new, d)
            }
            guard d.allowed else {
                services.settleBudgets(capture.budgetReservations, usedTokens: 0, usedMicros: 0, config: config)
                capture.budgetReservations = []
                logNotes.append(p.measure == .tokens ? "budget-exhausted" : "cost-budget-exhausted")
                metricsNotes.rateLimited = "budget"
                let (message, retryAfter) = BudgetCheck.refusal(kind: p.kind, measure: p.measure, limit: p.limit, spent: d.spent, amount: amount, now: nowMs)
                throw GatewayError.quotaExceeded(message, retryAfter: retryAfter)
            }
            if !dryRun { capture.budgetReservations.append(reservation) }
        }
        let perMinute = apiKey?.tokensPerMinute ?? config.rateLimit.tokensPerMinute
        if config.rateLimit.enabled, perMinute > 0 {
            let policy = TokenGCRA(tokensPerMinute: perMinute)
            let key = RateLimiter.key(client: clientIdentity, policy: apiKey?.tokensPerMinute != nil
                ? ASCIIText.build(capacity: apiKey!.name.utf8.count + 32) { $0.text("tokens-key-"); $0.text(apiKey!.name); $0.byte(0x3A); $0.number(perMinute) }
                : ASCIIText.build(capacity: 32) { $0.text("tokens:"); $0.number(perMinute) })
            let now = Clock.wallMicros()
            let d = dryRun
                ? services.limiter.update(key: key, config: config, now: now) { tat in (nil, policy.reserve(tokens: tokens, tat: tat, now: now)) }
                : services.limiter.reserve(key: key, tokens: tokens, policy: policy, config: config, now: now)
            if !dryRun { RateLimitHeaders.addTokens(to: &responseHeaders, policy: policy, decision: d) }
            if d.tooLarge || !d.allowed {
                services.settleBudgets(capture.budgetReservations, usedTokens: 0, usedMicros: 0, config: config)
                capture.budgetReservations = []
            }
            if d.tooLarge { throw GatewayError.tooLargeForTokenLimit(tokens: tokens, limit: policy.limit) }
            guard d.allowed else {
                logNotes.append("token-limited")
                metricsNotes.rateLimited = "tokens"
                throw GatewayError.tokensLimited(retryAfter: d.retryAfterSeconds, tokens: tokens, limit: policy.limit)
            }
            if !dryRun { capture.reservation = .init(key: key, tokens: tokens, policy: policy) }
        }
        guard !dryRun else { return nil }
        usage = capture
        services.beginUsage(capture, ctx: self)
        traceChat(capture, maxTokens: cap ?? completionTokens)
        return cap
    }
}

/// One budget a request is admitted under: a period (day, month) of a
/// measure (tokens, money), its limit and the book's count (the baseline),
/// and the counter's slot.
struct BudgetPeriod {
    let kind: BudgetCounter.Kind
    let measure: BudgetCounter.Measure
    let limit: Int
    let baseline: Int
    let key: UInt64
    let period: Int64
}

