/// Cross-field checks run after file and environment are merged.
extension GatewayConfig {
    public func validated() throws(ConfigError) -> GatewayConfig {
        guard let url = URLParts(upstream.baseURL) else {
            throw ConfigError("upstream.baseURL", "must be an absolute http(s) URL, got \"\(HeaderSafety.printable(upstream.baseURL, max: 80))\"")
        }
        if url.scheme == "http" && !url.isLoopback {
            throw ConfigError("upstream.baseURL", "must use https (http is accepted only for loopback hosts such as the simulator)")
        }
        if !upstream.anthropicBaseURL.isEmpty {
            guard let a = URLParts(upstream.anthropicBaseURL), a.scheme == "https" || a.isLoopback else {
                throw ConfigError("upstream.anthropicBaseURL", "must be an absolute https URL (http only for loopback), got \"\(HeaderSafety.printable(upstream.anthropicBaseURL, max: 80))\"")
            }
        }
        if !upstream.caFile.isEmpty, FileIO.read(upstream.caFile, limit: 4 << 20) == nil {
            throw ConfigError("upstream.caFile", "cannot read \(HeaderSafety.printable(upstream.caFile, max: 120))")
        }
        let pool = try Self.pool(upstream)
        guard !upstream.models.isEmpty else { throw ConfigError("upstream.models", "must list at least one model") }
        // Without configured models the upstream's list decides, at run time.
        guard !upstream.modelsConfigured || model(upstream.defaultModel) != nil else {
            throw ConfigError("upstream.defaultModel", "\"\(HeaderSafety.printable(upstream.defaultModel, max: 60))\" is not in upstream.models")
        }
        guard server.minThreads <= server.maxThreads else {
            throw ConfigError("server.minThreads", "must not exceed server.maxThreads (\(server.maxThreads))")
        }
        for (i, o) in cors.allowedOrigins.enumerated() where o != "*" {
            // A browser's Origin never has a path or a trailing slash: such an entry would never match.
            guard let u = URLParts(o), u.pathAndQuery.isEmpty else {
                throw ConfigError("cors.allowedOrigins[\(i)]", "must be an origin like https://app.example.com (no path, no trailing slash) or \"*\", got \"\(HeaderSafety.printable(o, max: 80))\"")
            }
        }
        if auth.required && auth.keys.isEmpty {
            throw ConfigError("auth.keys", "auth is required but no keys are configured (set VALID_API_KEYS or auth.keys)")
        }
        for (i, k) in auth.keys.enumerated() where upstream.modelsConfigured {
            for m in k.models where model(m) == nil {
                throw ConfigError("auth.keys[\(i)].models", "\"\(HeaderSafety.printable(m, max: 60))\" is not in upstream.models")
            }
        }
        try rateLimit.policy.checkResolution("rateLimit.maxRequests")
        for (i, k) in auth.keys.enumerated() { try k.rateLimit?.checkResolution("auth.keys[\(i)].rateLimit.maxRequests") }
        for (i, k) in auth.keys.enumerated() where k.budget != nil && !usage.enabled {
            throw ConfigError("auth.keys[\(i)].budget", "budgets are counted from the usage ledger: usage.enabled must be true")
        }
        for (i, k) in auth.keys.enumerated() where k.budget?.hasCost == true {
            if let problem = costBudgetProblem { throw ConfigError("auth.keys[\(i)].budget", problem) }
        }
        var c = self
        c.upstream.keys = pool
        guard var endpoint = RedisEndpoint(url: redis.url) else {
            throw ConfigError("redis.url", "must be redis://host[:port][/db] (db 0-15), got \"\(HeaderSafety.printable(RedisEndpoint.redacted(redis.url), max: 80))\"")
        }
        if !redis.password.isEmpty { endpoint.password = redis.password }
        guard (1...10_000).contains(redis.timeoutMs) else { throw ConfigError("redis.timeoutMs", "must be 1...10000, got \(redis.timeoutMs)") }
        guard !redis.prefix.isEmpty, redis.prefix.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigError("redis.prefix", "must be non-empty printable ASCII without spaces")
        }
        c.redis.endpoint = endpoint
        c.metrics.allowFromRanges = try metrics.allowFrom.enumerated().map { (i, s) throws(ConfigError) -> CIDR in
            guard let r = CIDR(s) else { throw ConfigError("metrics.allowFrom[\(i)]", "must be an address or CIDR range, got \"\(HeaderSafety.printable(s, max: 60))\"") }
            return r
        }
        if c.rateLimit.file.isEmpty { c.rateLimit.file = SharedFiles.defaultDirectory(env: [:]) + "/ratelimit.bin" }
        guard c.rateLimit.file.hasPrefix("/") else {
            throw ConfigError("rateLimit.file", "must be an absolute path")
        }
        if c.metrics.file.isEmpty { c.metrics.file = SharedFiles.directory(of: c.rateLimit.file) + "/metrics.bin" }
        guard c.metrics.file.hasPrefix("/") else { throw ConfigError("metrics.file", "must be an absolute path") }
        if c.storage.database.isEmpty { c.storage.database = SharedFiles.stateDirectory(env: [:]) + "/gateway.db" }
        if c.documents.cacheDir.isEmpty { c.documents.cacheDir = SharedFiles.stateDirectory(env: [:]) + "/documents" }
        guard c.documents.cacheDir.hasPrefix("/") else { throw ConfigError("documents.cacheDir", "must be an absolute path") }
        guard c.storage.database.hasPrefix("/") else {
            throw ConfigError("storage.database", "must be an absolute path")
        }
        if c.usage.database.isEmpty { c.usage.database = c.storage.database }
        guard c.usage.database.hasPrefix("/") else { throw ConfigError("usage.database", "must be an absolute path") }
        c.otel = try otel.resolved()
        c.rateLimit.policyKey = "default:\(rateLimit.policy.maxRequests)/\(rateLimit.policy.windowMs)"
        c.upstream.label = upstream.simulated
            ? "simulator (\(upstream.baseURL)): no KIMI_API_KEY set, answers are simulated"
            : "kimi-api (\(url.host))"
        return c
    }

    /// The key pool: `upstream.keys`, else one key per comma-separated item
    /// of `apiKey` (one key "" when it is empty: the simulator, or every
    /// chat fails with 502 as before). Each key's base URL defaults to
    /// `upstream.baseURL` and is checked like it.
    static func pool(_ upstream: Upstream) throws(ConfigError) -> [UpstreamKey] {
        var keys = upstream.keysConfigured ? upstream.keys
            : upstream.apiKey.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }.enumerated()
                .map { UpstreamKey(name: "key-\($0.offset + 1)", key: $0.element) }
        if keys.isEmpty { keys = [UpstreamKey(name: "key-1", key: "")] }
        for (i, k) in keys.enumerated() {
            if k.baseURL.isEmpty { keys[i] = k.with(baseURL: upstream.baseURL) }
            guard let u = URLParts(keys[i].baseURL), u.scheme == "https" || u.isLoopback else {
                throw ConfigError("upstream.keys[\(i)].baseURL", "must be an absolute https URL (http only for loopback), got \"\(HeaderSafety.printable(keys[i].baseURL, max: 80))\"")
            }
            guard HeaderSafety.isSafe(keys[i].key), !keys[i].key.contains(" ") else {
                throw ConfigError("upstream.keys[\(i)].key", "holds characters a key cannot have (spaces, control characters)")
            }
        }
        return keys
    }

    /// What is valid but almost certainly not meant: `check-config` and the
    /// start-up log print these as warnings.
    public func warnings() -> [String] {
        var out: [String] = []
        if upstream.apiKey.isEmpty && upstream.secrets.isEmpty && !upstream.simulated {
            out.append("upstream.apiKey is not set (KIMI_API_KEY) and the upstream is not the simulator: every chat will fail with 502")
        }
        return out
    }

    /// What `check-config` and the start-up log print: no secret, only fingerprints.
    public func summary() -> [String] {
        var lines = [
            "upstream.baseURL = \(upstream.baseURL)\(upstream.simulated ? " (simulator)" : "")",
            "upstream.keys = \(upstream.secrets.isEmpty ? "(not set)" : upstream.keys.map { "\($0.name) (fingerprint \($0.fingerprint), weight \($0.weight), \($0.baseURL))" }.joined(separator: "; "))",
            "upstream retries = \(upstream.retries) within \(upstream.retryDeadlineMs) ms; refused keys out for \(upstream.disabledKeySeconds) s",
            "upstream.defaultModel = \(upstream.defaultModel); models: \(upstream.modelsConfigured ? upstream.models.map(\.id).joined(separator: ", ") : "the upstream's list")",
            "server.maxBodyBytes = \(server.maxBodyBytes); threads \(server.minThreads)...\(server.maxThreads) per process, \(server.batchScheduling ? "SCHED_BATCH" : "the kernel's default scheduling")",
            "auth.required = \(auth.required); keys: \(auth.keys.map { "\($0.name) (\($0.sha256.prefix(8)))" }.joined(separator: ", "))",
            "cors.allowedOrigins = \(cors.allowedOrigins.joined(separator: ", "))",
            "rateLimit = \(rateLimit.enabled ? "\(rateLimit.policy.maxRequests) per \(rateLimit.policy.windowMs) ms\(rateLimit.tokensPerMinute > 0 ? ", \(rateLimit.tokensPerMinute) tokens per minute" : ""), file \(rateLimit.file)" : "off")",
            "state = \(state.backend == .redis ? "redis \(redis.endpoint.map(\.description) ?? "(invalid url)") (prefix \(redis.prefix), timeout \(redis.timeoutMs) ms\(redis.endpoint?.password.isEmpty == false ? ", password set" : "")), the file as fallback" : "file")",
            "usage = \(usage.enabled ? "recorded in \(usage.database.isEmpty ? storage.database : usage.database)" : "not recorded (usage.enabled false)")",
            "limits = \(limits.maxMessages) messages, \(limits.maxChars) characters, max_tokens \(limits.maxTokens); files per key \(limits.maxFilesPerKey == 0 ? "unlimited" : String(limits.maxFilesPerKey)), \(limits.maxFileBytesPerKey == 0 ? "unlimited" : "\(limits.maxFileBytesPerKey) bytes")",
        ]
        if !server.trustedProxies.isEmpty { lines.append("server.trustedProxies = \(server.trustedProxies.joined(separator: ", "))") }
        return lines
    }
}

extension GatewayConfig.RateLimitPolicy {
    /// The limiter's clock is in microseconds (`GCRA`): with more requests
    /// than microseconds in the window, the interval between them would be
    /// under 1 µs and the limit admitted would be one per microsecond, not
    /// the one configured (and advertised in `RateLimit-Limit`).
    func checkResolution(_ key: String) throws(ConfigError) {
        guard Int64(maxRequests) <= Int64(windowMs) * 1000 else {
            throw ConfigError(key, "\(maxRequests) per \(windowMs) ms is finer than the limiter's 1 µs: allow at most \(Int64(windowMs) * 1000) (one a microsecond), lengthen windowMs, or turn the limit off")
        }
    }
}

extension GatewayConfig {
    /// Why a money budget cannot be kept under this config (nil: it can):
    /// it is counted in `upstream.prices`, so there must be some. A model
    /// without a price (and no `"*"` entry) is refused at request time for
    /// keys with a money budget.
    public var costBudgetProblem: String? {
        upstream.prices.isEmpty ? "costPerDay and costPerMonth are counted in upstream.prices: set a price for each model (or \"*\")" : nil
    }
}

