import KimiCore
import Storage

extension Gateway {
    /// `GET /api/usage`: the calling key's usage today and this month (UTC),
    /// its budget and what remains of it, and its limits. Without a key (auth
    /// not required) the figures are those of all requests made without one.
    /// From this process's usage book, which trails the ledger by at most
    /// one drain (`usage.drainIntervalMs`); for a key with a budget it also
    /// holds this process's own records at once (see `UsageBook`).
    func usage(_ ctx: RequestContext) throws {
        guard let book = services.usage else {
            throw GatewayError.storageUnavailable("Usage storage is unavailable (\(services.usageProblem))")
        }
        let c = ctx.config
        let key = ctx.apiKey
        let nowMs = Clock.wallMicros() / 1000
        let spent = services.spent(key: key, book: book, config: c, nowMs: nowMs)
        func counts(_ u: UsageCounts) -> JSON {
            ["requests": .number(u.requests), "promptTokens": .number(u.promptTokens),
             "completionTokens": .number(u.completionTokens), "totalTokens": .number(u.totalTokens),
             "cost": .number(Double(u.costMicros) / 1_000_000)]
        }
        func optional(_ v: Int?) -> JSON { v.map { .number($0) } ?? .null }
        let budget = key?.budget
        let requests = key?.rateLimit ?? c.rateLimit.policy
        let tokensPerMinute = key?.tokensPerMinute ?? (c.rateLimit.tokensPerMinute > 0 ? c.rateLimit.tokensPerMinute : nil)
        ctx.json(200, [
            "success": true,
            "data": [
                "key": key.map { .string($0.name) } ?? .null,
                "today": counts(spent.day),
                "month": counts(spent.month),
                "budget": [
                    "tokensPerDay": optional(budget?.tokensPerDay),
                    "tokensPerMonth": optional(budget?.tokensPerMonth),
                    "remainingToday": optional(budget?.tokensPerDay.map { max(0, $0 - spent.day.totalTokens) }),
                    "remainingMonth": optional(budget?.tokensPerMonth.map { max(0, $0 - spent.month.totalTokens) }),
                    "costPerDay": budget?.costPerDay.map { .number($0) } ?? .null,
                    "costPerMonth": budget?.costPerMonth.map { .number($0) } ?? .null,
                    "costRemainingToday": budget?.costPerDay.map { .number(Double(max(0, BudgetCheck.micros($0) - spent.day.costMicros)) / 1_000_000) } ?? .null,
                    "costRemainingMonth": budget?.costPerMonth.map { .number(Double(max(0, BudgetCheck.micros($0) - spent.month.costMicros)) / 1_000_000) } ?? .null,
                ],
                "limits": c.rateLimit.enabled
                    ? ["requests": ["limit": .number(requests.maxRequests), "windowMs": .number(requests.windowMs)],
                       "tokensPerMinute": optional(tokensPerMinute)]
                    : ["requests": .null, "tokensPerMinute": .null],
            ],
        ])
    }

    /// `GET /api/admin/usage?from=ISO&to=ISO&groupBy=key|model|day&key=ID` (admin
    /// keys): the ledger summed over `[from, to)` — by default this UTC
    /// month up to now, by key; `key` (a key's id from `/api/admin/keys`,
    /// or its fingerprint) narrows it to one key (its tokens per day with
    /// `groupBy=day`). Includes what this process journalled; other
    /// processes' last drain interval (100 ms) may be missing.
    func adminUsage(_ ctx: RequestContext) throws {
        guard let usage = services.usage else {
            throw GatewayError.storageUnavailable("Usage storage is unavailable (\(services.usageProblem))")
        }
        let q = ctx.request.query
        let groupName = URLQuery.value("groupBy", in: q) ?? "key"
        guard let groupBy = UsageLedger.Grouping(rawValue: groupName) else {
            throw GatewayError.badRequest("'groupBy' must be key, model or day, got '\(HeaderSafety.printable(groupName, max: 40))'")
        }
        let (from, to) = try UsageReport.range(from: URLQuery.value("from", in: q), to: URLQuery.value("to", in: q),
                                              nowMs: Clock.wallMicros() / 1000).get()
        // A created key's id names its fixed fingerprint; a config key's id is "config-" + it.
        let fingerprint = URLQuery.value("key", in: q).map { id -> String in
            if id.hasPrefix("key_") { return String(SHA256.hex(id).prefix(16)) }
            return id.hasPrefix("config-") ? String(id.dropFirst(7)) : id
        }
        try? usage.drainOnce()
        let report: UsageReport
        do {
            report = try UsageReport.make(ledger: usage.ledger, from: from, to: to, groupBy: groupBy, prices: ctx.config.upstream.prices,
                                          keyFingerprint: fingerprint)
        } catch {
            throw GatewayError.storageUnavailable("The usage ledger cannot be read: \(error)")
        }
        ctx.json(200, ["success": true, "data": report.json])
    }
}
