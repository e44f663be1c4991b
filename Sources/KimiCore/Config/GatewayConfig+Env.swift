/// Environment overrides, named as in the Node.js Kimi backend's `.env`.
extension GatewayConfig {
    /// Every variable read, for docs and `check-config`.
    public static let environmentKeys = [
        "KIMI_API_KEY", "KIMI_BASE_URL", "KIMI_DEFAULT_MODEL", "KIMI_SIMULATED", "PORT", "RATE_LIMIT_WINDOW_MS",
        "RATE_LIMIT_MAX_REQUESTS", "RATE_LIMIT_FILE", "REQUIRE_API_KEY", "VALID_API_KEYS", "ALLOWED_ORIGINS",
        "TRUSTED_PROXIES", "MAX_BODY_BYTES", "KIMI_DATABASE", "USAGE_DATABASE", "RATE_LIMIT_TOKENS_PER_MINUTE",
        "LOG_FORMAT", "STATE_BACKEND", "REDIS_URL", "REDIS_PASSWORD",
    ]

    public func applying(env: [String: String]) throws(ConfigError) -> GatewayConfig {
        var c = self
        func int(_ k: String, min: Int) throws(ConfigError) -> Int? {
            guard let raw = env[k] else { return nil }
            let t = raw.trimmingSpaces()
            guard let v = Int(t) else { throw ConfigError(k, "must be an integer, got \"\(HeaderSafety.printable(t, max: 40))\"") }
            guard v >= min else { throw ConfigError(k, "must be at least \(min), got \(v)") }
            let maxValue = GatewayConfig.maxima[k] ?? 1_000_000_000
            guard v <= maxValue else { throw ConfigError(k, "must be at most \(maxValue), got \(v)") }
            return v
        }
        func bool(_ k: String) throws(ConfigError) -> Bool? {
            guard let raw = env[k] else { return nil }
            switch raw.trimmingSpaces().lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off", "": return false
            default: throw ConfigError(k, "must be true or false, got \"\(HeaderSafety.printable(raw, max: 40))\"")
            }
        }
        func list(_ k: String) -> [String]? {
            env[k].map { $0.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } }
        }
        if let v = env["STATE_BACKEND"], !v.isEmpty { c.state.backend = try State.Backend.parse(v, key: "STATE_BACKEND") }
        if let v = env["REDIS_URL"], !v.isEmpty { c.redis.url = v.trimmingSpaces() }
        if let v = env["REDIS_PASSWORD"], !v.isEmpty { c.redis.password = v }
        if let v = env["LOG_FORMAT"] { c.log.format = try LogSettings.Format.parse(v, key: "LOG_FORMAT") }
        if let v = env["KIMI_API_KEY"] {
            // One key, or a pool as a comma-separated list (which replaces upstream.keys).
            c.upstream.apiKey = v.trimmingSpaces()
            if c.upstream.apiKey.contains(",") || c.upstream.keysConfigured && !c.upstream.apiKey.isEmpty {
                c.upstream.keys = []
                c.upstream.keysConfigured = false
            }
        }
        for (i, k) in c.upstream.keys.enumerated() {
            guard let name = k.keyEnv else { continue }
            guard let v = env[name]?.trimmingSpaces(), !v.isEmpty else {
                throw ConfigError("upstream.keys[\(i)].keyEnv", "the environment variable \(HeaderSafety.printable(name, max: 60)) is not set")
            }
            c.upstream.keys[i] = k.with(key: v)
        }
        if let v = env["KIMI_BASE_URL"], !v.isEmpty { c.upstream.baseURL = v.trimmingSpaces() }
        if let v = env["KIMI_DEFAULT_MODEL"], !v.isEmpty { c.upstream.defaultModel = v.trimmingSpaces() }
        if let v = try bool("KIMI_SIMULATED") { c.upstream.simulated = v }
        // PORT is accepted for compatibility and ignored: under FastCGI the
        // web server owns the port.
        _ = try int("PORT", min: 0)
        if let v = try int("RATE_LIMIT_WINDOW_MS", min: 1) { c.rateLimit.policy.windowMs = v }
        if let v = try int("RATE_LIMIT_MAX_REQUESTS", min: 1) { c.rateLimit.policy.maxRequests = v }
        if let v = env["RATE_LIMIT_FILE"], !v.isEmpty { c.rateLimit.file = v }
        if c.rateLimit.file.isEmpty { c.rateLimit.file = SharedFiles.defaultDirectory(env: env) + "/ratelimit.bin" }
        if let v = env["KIMI_DATABASE"], !v.isEmpty { c.storage.database = v }
        if let v = env["USAGE_DATABASE"], !v.isEmpty { c.usage.database = v }
        if let v = try int("RATE_LIMIT_TOKENS_PER_MINUTE", min: 0) { c.rateLimit.tokensPerMinute = v }
        if c.documents.cacheDir.isEmpty { c.documents.cacheDir = SharedFiles.stateDirectory(env: env) + "/documents" }
        if c.storage.database.isEmpty { c.storage.database = SharedFiles.stateDirectory(env: env) + "/gateway.db" }
        if let v = try bool("REQUIRE_API_KEY") { c.auth.required = v }
        if let keys = list("VALID_API_KEYS") {
            let extra = keys.map { APIKey(sha256: SHA256.hex($0), name: "env-\(SHA256.hex($0).prefix(8))") }
            c.auth.keys += extra.filter { e in !c.auth.keys.contains { $0.sha256 == e.sha256 } }
        }
        if let v = list("ALLOWED_ORIGINS") { c.cors.allowedOrigins = v }
        if let v = list("TRUSTED_PROXIES") { c.server.trustedProxies = v }
        if let v = try int("MAX_BODY_BYTES", min: 1) { c.server.maxBodyBytes = v }
        return c
    }
}
