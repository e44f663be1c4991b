/// The JSON config file: every key as `GatewayConfig.keys` declares it.
/// Unknown keys are errors (a typo must not silently fall back to a
/// default), and every message names the key.
extension GatewayConfig {
    public static func parse(fileBytes: [UInt8], into base: GatewayConfig = GatewayConfig()) throws(ConfigError) -> GatewayConfig {
        let root: JSON
        do { root = try JSON.parse(fileBytes) } catch { throw ConfigError("", "not valid JSON: \(error)") }
        guard let top = root.objectValue else { throw ConfigError("", "the top level must be an object") }
        var c = base
        let declared = keys.filter { $0.fromJSON != nil }
        var sections: [String] = []
        for k in declared where !sections.contains(k.section) { sections.append(k.section) }
        try ConfigReader(prefix: "").check(top, known: Set(sections + ["$comment"]))
        for section in sections {
            guard let value = root[section] else { continue }
            let r = ConfigReader(prefix: section + ".")
            let o = try r.object(value)
            let mine = declared.filter { $0.section == section }
            try r.check(o, known: Set(mine.map(\.leaf) + ["$comment"]))
            for k in mine {
                if let v = value[k.leaf] { try k.fromJSON!(&c, v, r, k.leaf) }
            }
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
        "timeoutMs": 600_000, "maxQueueSize": 1 << 20, "maxExportBatchSize": 1 << 20, "scheduleDelayMs": 3_600_000,
        "OTEL_EXPORTER_OTLP_TIMEOUT": 600_000, "OTEL_BSP_MAX_QUEUE_SIZE": 1 << 20, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 1 << 20, "OTEL_BSP_SCHEDULE_DELAY": 3_600_000,
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
