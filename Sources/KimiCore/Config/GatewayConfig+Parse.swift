/// The JSON config file. Unknown keys are errors (a typo must not silently
/// fall back to a default), and every message names the key.
extension GatewayConfig {
    public static func parse(fileBytes: [UInt8], into base: GatewayConfig = GatewayConfig()) throws(ConfigError) -> GatewayConfig {
        let root: JSON
        do { root = try JSON.parse(fileBytes) } catch { throw ConfigError("", "not valid JSON: \(error)") }
        guard let top = root.objectValue else { throw ConfigError("", "the top level must be an object") }
        var c = base
        let r = ConfigReader(prefix: "")
        try r.check(top, known: ["upstream", "server", "auth", "cors", "rateLimit", "limits", "storage", "documents", "usage", "metrics", "log", "state", "redis", "$comment"])
        if let st = root["state"] {
            let r = ConfigReader(prefix: "state.")
            let o = try r.object(st)
            try r.check(o, known: ["backend"])
            if let v = st["backend"] { c.state.backend = try State.Backend.parse(try r.string(v, "backend"), key: "state.backend") }
        }
        if let rd = root["redis"] {
            let r = ConfigReader(prefix: "redis.")
            let o = try r.object(rd)
            try r.check(o, known: ["url", "timeoutMs", "prefix"])
            if let v = rd["url"] { c.redis.url = try r.string(v, "url") }
            if let v = rd["timeoutMs"] { c.redis.timeoutMs = try r.int(v, "timeoutMs", min: 1) }
            if let v = rd["prefix"] { c.redis.prefix = try r.string(v, "prefix") }
        }
        if let l = root["log"] {
            let r = ConfigReader(prefix: "log.")
            let o = try r.object(l)
            try r.check(o, known: ["format"])
            if let v = l["format"] { c.log.format = try LogSettings.Format.parse(try r.string(v, "format"), key: "log.format") }
        }
        if let u = root["usage"] {
            let r = ConfigReader(prefix: "usage.")
            let o = try r.object(u)
            try r.check(o, known: ["enabled", "database", "drainIntervalMs"])
            if let v = u["enabled"] { c.usage.enabled = try r.bool(v, "enabled") }
            if let v = u["database"] { c.usage.database = try r.string(v, "database") }
            if let v = u["drainIntervalMs"] { c.usage.drainIntervalMs = try r.int(v, "drainIntervalMs", min: 1) }
        }
        if let m = root["metrics"] {
            let r = ConfigReader(prefix: "metrics.")
            let o = try r.object(m)
            try r.check(o, known: ["enabled", "allowFrom", "file"])
            if let v = m["enabled"] { c.metrics.enabled = try r.bool(v, "enabled") }
            if let v = m["allowFrom"] { c.metrics.allowFrom = try r.strings(v, "allowFrom") }
            if let v = m["file"] { c.metrics.file = try r.string(v, "file") }
        }
        if let d = root["documents"] {
            let r = ConfigReader(prefix: "documents.")
            let o = try r.object(d)
            try r.check(o, known: ["cacheDir", "cacheBytes", "answerReserveTokens"])
            if let v = d["cacheDir"] { c.documents.cacheDir = try r.string(v, "cacheDir") }
            if let v = d["cacheBytes"] { c.documents.cacheBytes = try r.int(v, "cacheBytes", min: 0) }
            if let v = d["answerReserveTokens"] { c.documents.answerReserveTokens = try r.int(v, "answerReserveTokens", min: 1) }
        }
        if let s = root["storage"] {
            let r = ConfigReader(prefix: "storage.")
            let o = try r.object(s)
            try r.check(o, known: ["database"])
            if let v = s["database"] { c.storage.database = try r.string(v, "database") }
        }
        if let u = root["upstream"] {
            let r = ConfigReader(prefix: "upstream.")
            let o = try r.object(u)
            try r.check(o, known: ["baseURL", "anthropicBaseURL", "apiKey", "caFile", "simulated", "connectTimeoutMs", "idleTimeoutMs", "defaultModel",
                                   "models", "modelsCacheSeconds", "keepAliveSeconds", "totalTimeoutMs", "prices", "keys", "retries",
                                   "retryDeadlineMs", "retryBackoffMs", "firstByteTimeoutMs", "disabledKeySeconds", "$comment"])
            if let v = u["keys"] {
                guard let items = v.arrayValue else { throw ConfigError("upstream.keys", "must be an array, got \(v.typeName)") }
                c.upstream.keysConfigured = true
                c.upstream.keys = try items.enumerated().map { (i, item) throws(ConfigError) -> UpstreamKey in
                    let kr = ConfigReader(prefix: "upstream.keys[\(i)].")
                    let o = try kr.object(item)
                    try kr.check(o, known: ["key", "keyEnv", "name", "weight", "baseURL"])
                    let key = try item["key"].map { v throws(ConfigError) in try kr.string(v, "key") }
                    let keyEnv = try item["keyEnv"].map { v throws(ConfigError) in try kr.string(v, "keyEnv") }
                    guard (key == nil) != (keyEnv == nil) else { throw ConfigError("upstream.keys[\(i)]", "needs exactly one of key and keyEnv") }
                    let weight = try item["weight"].map { v throws(ConfigError) in try kr.int(v, "weight", min: 1) } ?? 1
                    guard weight <= 1000 else { throw ConfigError("upstream.keys[\(i)].weight", "must be at most 1000, got \(weight)") }
                    return UpstreamKey(name: try item["name"].map { v throws(ConfigError) in try kr.string(v, "name") } ?? "key-\(i + 1)",
                                       key: key ?? "", weight: weight,
                                       baseURL: try item["baseURL"].map { v throws(ConfigError) in try kr.string(v, "baseURL") } ?? "", keyEnv: keyEnv)
                }
                guard !c.upstream.keys.isEmpty else { throw ConfigError("upstream.keys", "must list at least one key (or leave it out)") }
            }
            if let v = u["retries"] { c.upstream.retries = try r.int(v, "retries", min: 0) }
            if let v = u["retryDeadlineMs"] { c.upstream.retryDeadlineMs = try r.int(v, "retryDeadlineMs", min: 0) }
            if let v = u["retryBackoffMs"] { c.upstream.retryBackoffMs = try r.int(v, "retryBackoffMs", min: 1) }
            if let v = u["firstByteTimeoutMs"] { c.upstream.firstByteTimeoutMs = try r.int(v, "firstByteTimeoutMs", min: 0) }
            if let v = u["disabledKeySeconds"] { c.upstream.disabledKeySeconds = try r.int(v, "disabledKeySeconds", min: 1) }
            if let v = u["prices"] {
                for (model, p) in try r.object(v) {
                    let pr = ConfigReader(prefix: "upstream.prices.\(HeaderSafety.printable(model, max: 60)).")
                    let po = try pr.object(p)
                    try pr.check(po, known: ["input", "cachedInput", "output"])
                    guard let i = p["input"], let out = p["output"] else {
                        throw ConfigError("upstream.prices.\(HeaderSafety.printable(model, max: 60))", "needs input and output (per million tokens)")
                    }
                    c.upstream.prices[model] = Price(input: try pr.price(i, "input"), cachedInput: try p["cachedInput"].map { v throws(ConfigError) in try pr.price(v, "cachedInput") },
                                                     output: try pr.price(out, "output"))
                }
            }
            if let v = u["baseURL"] { c.upstream.baseURL = try r.string(v, "baseURL") }
            if let v = u["anthropicBaseURL"] { c.upstream.anthropicBaseURL = try r.string(v, "anthropicBaseURL") }
            if let v = u["apiKey"] { c.upstream.apiKey = try r.string(v, "apiKey") }
            if let v = u["caFile"] { c.upstream.caFile = try r.string(v, "caFile") }
            if let v = u["simulated"] { c.upstream.simulated = try r.bool(v, "simulated") }
            if let v = u["connectTimeoutMs"] { c.upstream.connectTimeoutMs = try r.int(v, "connectTimeoutMs", min: 1) }
            if let v = u["idleTimeoutMs"] { c.upstream.idleTimeoutMs = try r.int(v, "idleTimeoutMs", min: 1) }
            if let v = u["totalTimeoutMs"] { c.upstream.totalTimeoutMs = try r.int(v, "totalTimeoutMs", min: 1) }
            if let v = u["defaultModel"] { c.upstream.defaultModel = try r.string(v, "defaultModel") }
            if let v = u["modelsCacheSeconds"] { c.upstream.modelsCacheSeconds = try r.int(v, "modelsCacheSeconds", min: 0) }
            if let v = u["keepAliveSeconds"] { c.upstream.keepAliveSeconds = try r.int(v, "keepAliveSeconds", min: 1) }
            if let v = u["models"] {
                c.upstream.modelsConfigured = true
                guard let items = v.arrayValue else { throw ConfigError("upstream.models", "must be an array, got \(v.typeName)") }
                c.upstream.models = try items.enumerated().map { (i, item) throws(ConfigError) -> Model in
                    let key = "upstream.models[\(i)]"
                    if let id = item.stringValue { return Model(id: id, contextLength: KimiModels.contextLength(id)) }
                    let r = ConfigReader(prefix: key + ".")
                    let o = try r.object(item)
                    try r.check(o, known: ["id", "contextLength"])
                    guard let idv = item["id"] else { throw ConfigError(key + ".id", "is required") }
                    let id = try r.string(idv, "id")
                    let ctx = try item["contextLength"].map { v throws(ConfigError) in try r.int(v, "contextLength", min: 1) }
                    return Model(id: id, contextLength: ctx ?? KimiModels.contextLength(id))
                }
            }
        }
        if let s = root["server"] {
            let r = ConfigReader(prefix: "server.")
            let o = try r.object(s)
            try r.check(o, known: ["maxBodyBytes", "minThreads", "maxThreads", "drainTimeoutMs", "trustedProxies", "readTimeoutMs",
                                   "maxBufferedBytes", "batchScheduling"])
            if let v = s["maxBodyBytes"] { c.server.maxBodyBytes = try r.int(v, "maxBodyBytes", min: 1) }
            if let v = s["minThreads"] { c.server.minThreads = try r.int(v, "minThreads", min: 1) }
            if let v = s["maxThreads"] { c.server.maxThreads = try r.int(v, "maxThreads", min: 1) }
            if let v = s["drainTimeoutMs"] { c.server.drainTimeoutMs = try r.int(v, "drainTimeoutMs", min: 0) }
            if let v = s["readTimeoutMs"] { c.server.readTimeoutMs = try r.int(v, "readTimeoutMs", min: 1) }
            if let v = s["maxBufferedBytes"] { c.server.maxBufferedBytes = try r.int(v, "maxBufferedBytes", min: 1 << 20) }
            if let v = s["trustedProxies"] { c.server.trustedProxies = try r.strings(v, "trustedProxies") }
            if let v = s["batchScheduling"] { c.server.batchScheduling = try r.bool(v, "batchScheduling") }
        }
        if let a = root["auth"] {
            let r = ConfigReader(prefix: "auth.")
            let o = try r.object(a)
            try r.check(o, known: ["required", "keys"])
            if let v = a["required"] { c.auth.required = try r.bool(v, "required") }
            if let v = a["keys"] {
                guard let items = v.arrayValue else { throw ConfigError("auth.keys", "must be an array, got \(v.typeName)") }
                c.auth.keys = try items.enumerated().map { (i, item) throws(ConfigError) in try APIKey.parse(item, key: "auth.keys[\(i)]") }
            }
        }
        if let cv = root["cors"] {
            let r = ConfigReader(prefix: "cors.")
            let o = try r.object(cv)
            try r.check(o, known: ["allowedOrigins", "maxAgeSeconds"])
            if let v = cv["allowedOrigins"] { c.cors.allowedOrigins = try r.strings(v, "allowedOrigins") }
            if let v = cv["maxAgeSeconds"] { c.cors.maxAgeSeconds = try r.int(v, "maxAgeSeconds", min: 0) }
        }
        if let rl = root["rateLimit"] {
            let r = ConfigReader(prefix: "rateLimit.")
            let o = try r.object(rl)
            try r.check(o, known: ["enabled", "windowMs", "maxRequests", "file", "tableSize", "tokensPerMinute", "completionReserveTokens"])
            if let v = rl["tokensPerMinute"] { c.rateLimit.tokensPerMinute = try r.int(v, "tokensPerMinute", min: 0) }
            if let v = rl["completionReserveTokens"] { c.rateLimit.completionReserveTokens = try r.int(v, "completionReserveTokens", min: 1) }
            if let v = rl["enabled"] { c.rateLimit.enabled = try r.bool(v, "enabled") }
            if let v = rl["windowMs"] { c.rateLimit.policy.windowMs = try r.int(v, "windowMs", min: 1) }
            if let v = rl["maxRequests"] { c.rateLimit.policy.maxRequests = try r.int(v, "maxRequests", min: 1) }
            if let v = rl["file"] { c.rateLimit.file = try r.string(v, "file") }
            if let v = rl["tableSize"] { c.rateLimit.tableSize = try r.int(v, "tableSize", min: 64) }
        }
        if let l = root["limits"] {
            let r = ConfigReader(prefix: "limits.")
            let o = try r.object(l)
            try r.check(o, known: ["maxMessages", "maxChars", "maxTokens", "maxFileBytes", "maxFilesPerKey", "maxFileBytesPerKey"])
            if let v = l["maxFilesPerKey"] { c.limits.maxFilesPerKey = try r.int(v, "maxFilesPerKey", min: 0) }
            if let v = l["maxFileBytesPerKey"] { c.limits.maxFileBytesPerKey = try r.int(v, "maxFileBytesPerKey", min: 0) }
            if let v = l["maxFileBytes"] { c.limits.maxFileBytes = try r.int(v, "maxFileBytes", min: 1) }
            if let v = l["maxMessages"] { c.limits.maxMessages = try r.int(v, "maxMessages", min: 1) }
            if let v = l["maxChars"] { c.limits.maxChars = try r.int(v, "maxChars", min: 1) }
            if let v = l["maxTokens"] { c.limits.maxTokens = try r.int(v, "maxTokens", min: 1) }
        }
        return c
    }
}

extension GatewayConfig {
    /// Upper bounds of the numeric keys (file and environment alike): every
    /// value is later multiplied into micro- or nanoseconds, and Swift traps
    /// on overflow. Keys not listed are capped at 10^9.
    static let maxima: [String: Int] = [
        "connectTimeoutMs": 600_000, "idleTimeoutMs": 86_400_000, "keepAliveSeconds": 3_600,
        "modelsCacheSeconds": 86_400, "drainTimeoutMs": 3_600_000, "totalTimeoutMs": 86_400_000, "readTimeoutMs": 3_600_000,
        "maxBufferedBytes": 1 << 34, "windowMs": 31_536_000_000,
        "maxBodyBytes": 1 << 30, "maxFileBytes": 1 << 34, "maxFileBytesPerKey": 1 << 44, "maxFilesPerKey": 1 << 20, "maxConcurrent": 100_000, "cacheBytes": 1 << 40, "answerReserveTokens": 1 << 22, "minThreads": 4_096, "maxThreads": 4_096, "tableSize": 1 << 24,
        "maxAgeSeconds": 86_400, "drainIntervalMs": 60_000, "completionReserveTokens": 1 << 22,
        "tokensPerDay": 1 << 50, "tokensPerMonth": 1 << 50,
        "RATE_LIMIT_WINDOW_MS": 31_536_000_000, "MAX_BODY_BYTES": 1 << 30,
    ]
}


extension GatewayConfig.APIKey {
    public static func parse(_ item: JSON, key: String) throws(ConfigError) -> GatewayConfig.APIKey {
        if let plain = item.stringValue {
            guard !plain.isEmpty else { throw ConfigError(key, "must not be empty") }
            return .init(sha256: SHA256.hex(plain), name: "key-\(SHA256.hex(plain).prefix(8))")
        }
        let r = ConfigReader(prefix: key + ".")
        let o = try r.object(item)
        try r.check(o, known: ["key", "sha256", "name", "models", "rateLimit", "role", "budget", "maxConcurrent", "note"])
        let hash: String
        if item["key"] != nil, item["sha256"] != nil {
            throw ConfigError(key, "give either \"key\" or \"sha256\", not both")
        } else if let k = item["key"] {
            let plain = try r.string(k, "key")
            guard !plain.isEmpty else { throw ConfigError(key + ".key", "must not be empty") }
            hash = SHA256.hex(plain)
        } else if let h = item["sha256"] {
            let hex = try r.string(h, "sha256").lowercased()
            guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
                throw ConfigError(key + ".sha256", "must be 64 hex digits (from `kimi-gateway hash-key`)")
            }
            hash = hex
        } else {
            throw ConfigError(key, "needs \"key\" or \"sha256\"")
        }
        var entry = GatewayConfig.APIKey(sha256: hash, name: "key-\(hash.prefix(8))")
        if let n = item["name"] { entry.name = HeaderSafety.printable(try r.string(n, "name"), max: 64) }
        if let m = item["models"] { entry.models = try r.strings(m, "models") }
        if let v = item["maxConcurrent"], !v.isNull { entry.maxConcurrent = try r.int(v, "maxConcurrent", min: 1) }
        if let v = item["role"] {
            let name = try r.string(v, "role")
            guard let role = Role(rawValue: name) else {
                throw ConfigError(key + ".role", "must be one of \(Role.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), got \"\(HeaderSafety.printable(name, max: 40))\"")
            }
            entry.role = role
        }
        if let rl = item["rateLimit"] {
            let rr = ConfigReader(prefix: key + ".rateLimit.")
            let o = try rr.object(rl)
            try rr.check(o, known: ["windowMs", "maxRequests", "tokensPerMinute"])
            if let t = rl["tokensPerMinute"] { entry.tokensPerMinute = try rr.int(t, "tokensPerMinute", min: 1) }
            switch (rl["windowMs"], rl["maxRequests"]) {
            case let (w?, m?):
                entry.rateLimit = .init(windowMs: try rr.int(w, "windowMs", min: 1), maxRequests: try rr.int(m, "maxRequests", min: 1))
            case (nil, nil) where entry.tokensPerMinute != nil: break
            default: throw ConfigError(key + ".rateLimit", "needs both windowMs and maxRequests (or only tokensPerMinute)")
            }
        }
        if let b = item["budget"] {
            let br = ConfigReader(prefix: key + ".budget.")
            let o = try br.object(b)
            try br.check(o, known: ["tokensPerDay", "tokensPerMonth", "costPerDay", "costPerMonth"])
            let cost = { (k: String) throws(ConfigError) -> Double? in
                guard let v = b[k], !v.isNull else { return nil }
                guard let d = v.doubleValue, d > 0, d <= GatewayConfig.Budget.maxCost else {
                    throw ConfigError(key + ".budget." + k, "must be a number > 0 and at most \(Int(GatewayConfig.Budget.maxCost)) (in the currency of upstream.prices), got \(v.serialized())")
                }
                return d
            }
            entry.budget = .init(tokensPerDay: try b["tokensPerDay"].map { v throws(ConfigError) in try br.int(v, "tokensPerDay", min: 1) },
                                 tokensPerMonth: try b["tokensPerMonth"].map { v throws(ConfigError) in try br.int(v, "tokensPerMonth", min: 1) },
                                 costPerDay: try cost("costPerDay"), costPerMonth: try cost("costPerMonth"))
            guard let budget = entry.budget, budget.tokensPerDay != nil || budget.tokensPerMonth != nil || budget.hasCost else {
                throw ConfigError(key + ".budget", "needs tokensPerDay, tokensPerMonth, costPerDay or costPerMonth")
            }
        }
        return entry
    }
}

/// Typed reads with messages that name the key.
struct ConfigReader {
    let prefix: String

    func object(_ v: JSON) throws(ConfigError) -> [(String, JSON)] {
        guard let o = v.objectValue else { throw ConfigError(String(prefix.dropLast()), "must be an object, got \(v.typeName)") }
        return o
    }
    func check(_ o: [(String, JSON)], known: Set<String>) throws(ConfigError) {
        for (k, _) in o where !known.contains(k) {
            throw ConfigError(prefix + HeaderSafety.printable(k, max: 60), "unknown key (known: \(known.filter { $0 != "$comment" }.sorted().joined(separator: ", ")))")
        }
    }
    func string(_ v: JSON, _ k: String) throws(ConfigError) -> String {
        guard let s = v.stringValue else { throw ConfigError(prefix + k, "must be a string, got \(v.typeName)") }
        return s
    }
    func price(_ v: JSON, _ k: String) throws(ConfigError) -> Double {
        guard let d = v.doubleValue, d >= 0, d < 1e9 else { throw ConfigError(prefix + k, "must be a number ≥ 0 (per million tokens), got \(v.serialized())") }
        return d
    }
    func bool(_ v: JSON, _ k: String) throws(ConfigError) -> Bool {
        guard let b = v.boolValue else { throw ConfigError(prefix + k, "must be true or false, got \(v.typeName)") }
        return b
    }
    func int(_ v: JSON, _ k: String, min: Int) throws(ConfigError) -> Int {
        guard let i = v.intValue else { throw ConfigError(prefix + k, "must be an integer, got \(v.typeName == "number" ? v.serialized() : v.typeName)") }
        guard i >= min else { throw ConfigError(prefix + k, "must be at least \(min), got \(i)") }
        let maxValue = GatewayConfig.maxima[k] ?? 1_000_000_000
        guard i <= maxValue else { throw ConfigError(prefix + k, "must be at most \(maxValue), got \(i)") }
        return i
    }
    func strings(_ v: JSON, _ k: String) throws(ConfigError) -> [String] {
        guard let a = v.arrayValue else { throw ConfigError(prefix + k, "must be an array of strings, got \(v.typeName)") }
        var out: [String] = []
        for (i, item) in a.enumerated() {
            guard let s = item.stringValue else { throw ConfigError("\(prefix)\(k)[\(i)]", "must be a string, got \(item.typeName)") }
            out.append(s)
        }
        return out
    }
}

extension GatewayConfig.LogSettings.Format {
    static func parse(_ v: String, key: String) throws(ConfigError) -> Self {
        guard let f = Self(rawValue: v.trimmingSpaces().lowercased()) else {
            throw ConfigError(key, "must be \"text\" or \"json\", got \"\(HeaderSafety.printable(v, max: 40))\"")
        }
        return f
    }
}

extension GatewayConfig.State.Backend {
    static func parse(_ v: String, key: String) throws(ConfigError) -> Self {
        guard let b = Self(rawValue: v.trimmingSpaces().lowercased()) else {
            throw ConfigError(key, "must be \"file\" or \"redis\", got \"\(HeaderSafety.printable(v, max: 40))\"")
        }
        return b
    }
}
