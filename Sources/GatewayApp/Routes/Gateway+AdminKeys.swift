import KimiCore
import Storage

/// Keys as data: client keys issued, changed, rotated and
/// revoked at run time by admin keys, in the `/api` face's format. A secret
/// appears in the answer that makes it and nowhere else; config-file keys
/// are listed (`source: "config"`) and read-only. Every change is an audit
/// line in the log: who, what, never the secret.
extension Gateway {
    /// The fields a created key takes, and a change may set (`null` clears).
    public static let keyFields: Set<String> = ["name", "role", "models", "rateLimit", "budget", "maxConcurrent", "expiresAt", "note", "enabled"]

    func keyStore() throws -> KeyStore {
        guard let keys = services.keys else { throw GatewayError.storageUnavailable("Key storage is unavailable (\(services.storageProblem))") }
        return keys.store
    }

    /// `POST /api/admin/keys` → 201 with the secret, once.
    func createKey(_ ctx: RequestContext) throws {
        let store = try keyStore()
        let body = try ctx.jsonBody()
        try Self.checkKeyFields(body, creating: true)
        guard let name = body["name"]?.stringValue, !name.trimmingSpaces().isEmpty else { throw GatewayError.badRequest("'name' is required (a string)") }
        let spec = try Self.keySpec(from: body, base: ["name": .string(HeaderSafety.printable(name, max: 64))])
        try Self.checkCostBudget(spec, config: ctx.config)
        let expires = try Self.expiry(body["expiresAt"])
        if let e = expires, e <= Clock.wallMicros() / 1000 { throw GatewayError.badRequest("'expiresAt' is in the past") }
        let (entry, secret) = try store.create(name: HeaderSafety.printable(name, max: 64), spec: spec, expiresAtMs: expires)
        services.keys?.changed()
        audit(ctx, "created key \(entry.id) name=\(entry.name) role=\(spec["role"]?.stringValue ?? "client")")
        ctx.json(201, ["success": true, "data": Self.describe(entry).setting("key", .string(secret))])
    }

    /// `GET /api/admin/keys`: created keys and config keys, no secret.
    func listKeys(_ ctx: RequestContext) throws {
        let store = try keyStore()
        let nowMs = Clock.wallMicros() / 1000
        // What the console's table shows beside each key: its budgets' use
        // and when it was last used (the ledger's last 30 days).
        let lastUsed = (try? services.usage?.ledger.lastUsed(since: nowMs - 30 * 86_400_000)) ?? [:]
        let withUse = { (out: JSON, key: GatewayConfig.APIKey?) -> JSON in
            guard let key else { return out }
            var o = out.setting("lastUsedAt", lastUsed[key.fingerprint].map { JSON.string(UsagePeriod.iso($0)) } ?? .null)
            if key.budget != nil { o = o.setting("budgetUse", self.budgetUse(key, config: ctx.config, nowMs: nowMs)) }
            return o
        }
        let created = try store.all().map { withUse(Self.describe($0), $0.apiKey) }
        let configured = ctx.config.auth.keys.map { withUse(Self.describe($0), $0) }
        ctx.json(200, ["success": true, "data": .array(created + configured)])
    }

    /// `GET /api/admin/keys/{id}`.
    func getKey(_ ctx: RequestContext) throws {
        let id = ctx.pathParameters["id"] ?? ""
        if let k = ctx.config.auth.keys.first(where: { Self.configID($0) == id }) { return ctx.json(200, ["success": true, "data": Self.describe(k)]) }
        guard let entry = try keyStore().get(id) else { throw GatewayError.keyNotFound(id) }
        ctx.json(200, ["success": true, "data": Self.describe(entry)])
    }

    /// `PATCH /api/admin/keys/{id}`: name, role, models, limits, budget,
    /// maxConcurrent, expiresAt, enabled, note (`null` clears a limit).
    func updateKey(_ ctx: RequestContext) throws {
        let id = try mutableKeyID(ctx)
        let body = try ctx.jsonBody()
        try Self.checkKeyFields(body, creating: false)
        guard !(body.objectValue ?? []).isEmpty else { throw GatewayError.badRequest("Nothing to change: send one of \(Self.keyFields.sorted().joined(separator: ", "))") }
        let entry = try keyStore().update(id) { e throws in
            try Self.apply(body, to: &e)
            try Self.checkCostBudget(e.spec, config: ctx.config)
        }
        guard let entry else { throw GatewayError.keyNotFound(id) }
        services.keys?.changed()
        audit(ctx, "changed key \(id) (\((body.objectValue ?? []).map(\.0).sorted().joined(separator: ",")))")
        ctx.json(200, ["success": true, "data": Self.describe(entry)])
    }

    /// `POST /api/admin/keys/{id}/rotate {"graceSeconds"}`: a new secret
    /// (shown once); the old one works until the grace ends (default 0).
    func rotateKey(_ ctx: RequestContext) throws {
        let id = try mutableKeyID(ctx)
        let body = ctx.request.body.isEmpty ? JSON.object([]) : try ctx.jsonBody()
        var grace = 0
        if let v = body["graceSeconds"], !v.isNull {
            guard let n = v.intValue, n >= 0, n <= 30 * 86_400 else { throw GatewayError.badRequest("'graceSeconds' must be an integer from 0 to 2592000 (30 days)") }
            grace = n
        }
        guard let (entry, secret) = try keyStore().rotate(id, graceSeconds: grace) else { throw GatewayError.keyNotFound(id) }
        services.keys?.changed()
        audit(ctx, "rotated key \(id) grace=\(grace)s")
        ctx.json(200, ["success": true, "data": Self.describe(entry).setting("key", .string(secret))])
    }

    /// `DELETE /api/admin/keys/{id}`: revoked at once and for good, kept for the ledger.
    func revokeKey(_ ctx: RequestContext) throws {
        let id = try mutableKeyID(ctx)
        guard let entry = try keyStore().revoke(id) else { throw GatewayError.keyNotFound(id) }
        services.keys?.changed()
        audit(ctx, "revoked key \(id) name=\(entry.name)")
        ctx.json(200, ["success": true, "data": Self.describe(entry)])
    }

    /// `GET /api/keys/me`: the calling key's own name, limits, budget used and left, expiry.
    func keyMe(_ ctx: RequestContext) throws {
        guard let key = ctx.apiKey else { throw GatewayError.unauthorized("API key required: send x-api-key or Authorization: Bearer") }
        var data = Self.describe(key)
        if key.budget != nil { data = data.setting("budgetUse", budgetUse(key, config: ctx.config, nowMs: Clock.wallMicros() / 1000)) }
        ctx.json(200, ["success": true, "data": data])
    }

    /// A key's budgets against what it spent: `{day, month, costDay,
    /// costMonth}`, each `{limit, used, left, renewsAt}` (money as numbers
    /// in the currency of `upstream.prices`); only the budgets it has.
    func budgetUse(_ key: GatewayConfig.APIKey, config: GatewayConfig, nowMs: Int64) -> JSON {
        guard let budget = key.budget, let book = services.usage else { return .null }
        let spent = services.spent(key: key, book: book, config: config, nowMs: nowMs)
        let (day, month) = (UsagePeriod.day(containing: nowMs).to, UsagePeriod.month(containing: nowMs).to)
        var b: JSON = [:]
        func use(_ name: String, _ limit: JSON, _ used: JSON, _ left: JSON, _ renews: Int64) {
            b = b.setting(name, ["limit": limit, "used": used, "left": left, "renewsAt": .string(UsagePeriod.iso(renews))])
        }
        if let d = budget.tokensPerDay { use("day", .number(d), .number(spent.day.totalTokens), .number(max(0, d - spent.day.totalTokens)), day) }
        if let m = budget.tokensPerMonth { use("month", .number(m), .number(spent.month.totalTokens), .number(max(0, m - spent.month.totalTokens)), month) }
        let money = { (micros: Int) in JSON.number(Double(micros) / 1_000_000) }
        if let d = budget.costPerDay {
            use("costDay", .number(d), money(spent.day.costMicros), money(max(0, BudgetCheck.micros(d) - spent.day.costMicros)), day)
        }
        if let m = budget.costPerMonth {
            use("costMonth", .number(m), money(spent.month.costMicros), money(max(0, BudgetCheck.micros(m) - spent.month.costMicros)), month)
        }
        return b
    }


    // MARK: helpers

    private func mutableKeyID(_ ctx: RequestContext) throws -> String {
        let id = ctx.pathParameters["id"] ?? ""
        if ctx.config.auth.keys.contains(where: { Self.configID($0) == id }) {
            throw GatewayError.conflict("Key \(id) is in the config file and read-only here: change it there")
        }
        return id
    }

    private func audit(_ ctx: RequestContext, _ what: String) {
        let who = ctx.apiKey.map { "\($0.name)(\($0.fingerprint.prefix(8)))" } ?? "?"
        Log.info("audit: admin \(who) \(HeaderSafety.printable(what, max: 300)) rid=\(ctx.request.requestID)")
    }

    /// A change (PATCH's body, the CLI's `keys update`) applied to a stored
    /// key: each field set, or removed by `null`, then the whole checked.
    public static func apply(_ body: JSON, to e: inout KeyStore.Entry) throws {
        var spec = e.spec
        for (name, value) in body.objectValue ?? [] where name != "expiresAt" && name != "enabled" {
            spec = value.isNull ? spec.removing(name)
                : spec.setting(name, name == "name" ? .string(HeaderSafety.printable(value.stringValue ?? "", max: 64)) : value)
        }
        e.spec = try keySpec(from: spec, base: [:])
        e.name = e.spec["name"]?.stringValue ?? e.name
        if let v = body["expiresAt"] { e.expiresAtMs = try expiry(v) }
        if let v = body["enabled"] {
            guard let b = v.boolValue else { throw GatewayError.badRequest("'enabled' must be a boolean") }
            e.enabled = b
        }
    }

    /// A money budget is counted in `upstream.prices`: refused (400) under a config with none.
    static func checkCostBudget(_ spec: JSON, config: GatewayConfig) throws {
        guard spec["budget"]?["costPerDay"] != nil || spec["budget"]?["costPerMonth"] != nil, let problem = config.costBudgetProblem else { return }
        throw GatewayError.badRequest("'budget': \(problem)")
    }

    public static func checkKeyFields(_ body: JSON, creating: Bool) throws {
        for (name, _) in body.objectValue ?? [] where !keyFields.contains(name) {
            throw GatewayError.badRequest("Unknown field '\(HeaderSafety.printable(name, max: 40))'; known: \(keyFields.sorted().joined(separator: ", "))")
        }
        if !creating, body["name"]?.isNull == true { throw GatewayError.badRequest("'name' cannot be cleared") }
    }

    /// The stored spec: the body's limit fields, checked by the config's own
    /// key parser (one set of rules and messages for config and created keys).
    public static func keySpec(from body: JSON, base: JSON) throws -> JSON {
        var spec = base
        for name in ["name", "role", "models", "rateLimit", "budget", "maxConcurrent", "note"] {
            if let v = body[name], !v.isNull, spec[name] == nil { spec = spec.setting(name, v) }
        }
        if let note = spec["note"] {
            guard let s = note.stringValue, s.utf8.count <= 500 else { throw GatewayError.badRequest("'note' must be a string of at most 500 bytes") }
        }
        do { _ = try GatewayConfig.APIKey.parse(spec.setting("sha256", .string(String(repeating: "0", count: 64))), key: "key") } catch {
            let field = error.key.hasPrefix("key.") ? String(error.key.dropFirst(4)) : error.key
            throw GatewayError.badRequest("'\(field)': \(error.problem)")
        }
        return spec
    }

    /// `expiresAt`: ISO 8601 UTC (`2027-01-31T00:00:00Z`) or Unix seconds; null: never.
    public static func expiry(_ v: JSON?) throws -> Int64? {
        guard let v, !v.isNull else { return nil }
        if let n = v.intValue, n > 0 { return Int64(n) * 1000 }
        if let s = v.stringValue, let ms = UsagePeriod.parseISO(s) { return ms }
        throw GatewayError.badRequest("'expiresAt' must be an ISO 8601 UTC time (2027-01-31T00:00:00Z) or Unix seconds")
    }

    public static func configID(_ k: GatewayConfig.APIKey) -> String { "config-" + k.fingerprint }

    public static func describe(_ e: KeyStore.Entry) -> JSON {
        var out: JSON = ["id": .string(e.id), "source": "created", "name": .string(e.name), "role": e.spec["role"] ?? "client",
                         "fingerprint": .string(String(SHA256.hex(e.id).prefix(16))), "state": .string(e.state),
                         "createdAt": .string(UsagePeriod.iso(e.createdAtMs)), "updatedAt": .string(UsagePeriod.iso(e.updatedAtMs)),
                         "expiresAt": e.expiresAtMs.map { .string(UsagePeriod.iso($0)) } ?? .null,
                         "revokedAt": e.revokedAtMs.map { .string(UsagePeriod.iso($0)) } ?? .null,
                         "previousValidUntil": e.previousUntilMs.map { .string(UsagePeriod.iso($0)) } ?? .null]
        for name in ["models", "rateLimit", "budget", "maxConcurrent", "note"] { out = out.setting(name, e.spec[name] ?? .null) }
        return out
    }

    public static func describe(_ k: GatewayConfig.APIKey) -> JSON {
        var rate: JSON = .null
        if let r = k.rateLimit { rate = ["windowMs": .number(r.windowMs), "maxRequests": .number(r.maxRequests)] }
        if let t = k.tokensPerMinute { rate = (rate.isNull ? [:] : rate).setting("tokensPerMinute", .number(t)) }
        var budget: JSON = .null
        if let b = k.budget {
            budget = [:]
            if let d = b.tokensPerDay { budget = budget.setting("tokensPerDay", .number(d)) }
            if let m = b.tokensPerMonth { budget = budget.setting("tokensPerMonth", .number(m)) }
            if let d = b.costPerDay { budget = budget.setting("costPerDay", .number(d)) }
            if let m = b.costPerMonth { budget = budget.setting("costPerMonth", .number(m)) }
        }
        return ["id": .string(k.id ?? configID(k)), "source": k.id == nil ? "config" : "created", "name": .string(k.name),
                "role": .string(k.role.rawValue), "fingerprint": .string(k.fingerprint),
                "models": .array(k.models.map { .string($0) }), "rateLimit": rate, "budget": budget,
                "maxConcurrent": k.maxConcurrent.map { .number($0) } ?? .null,
                "expiresAt": k.expiresAtMs.map { .string(UsagePeriod.iso($0)) } ?? .null]
    }
}
