/// Environment overrides, named as in the Node.js Kimi backend's `.env`.
extension GatewayConfig {
    /// Every variable read, for docs and `check-config`.
    public static let environmentKeys = keys.compactMap(\.env) + tracesVariables.values

    /// The OTLP exporter's per-signal variables (OpenTelemetry's exporter
    /// spec, "Configuration Options"): for traces, the only signal exported,
    /// each wins over its generic one. (`…_TRACES_ENDPOINT` is a key of its
    /// own: it is used as given, where the generic one gets `/v1/traces`.)
    static let tracesVariables: [String: String] = [
        "OTEL_EXPORTER_OTLP_HEADERS": "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    ]

    /// Each declared key's variable (`GatewayConfig.keys`), then those
    /// whose meaning is more than a value: the key pool, `keyEnv`, client
    /// keys from `VALID_API_KEYS`, `PORT`, and the defaults of paths.
    public func applying(env: [String: String]) throws(ConfigError) -> GatewayConfig {
        var c = self
        for k in Self.keys {
            guard let generic = k.env, let apply = k.fromEnv else { continue }
            let name = Self.tracesVariables[generic].flatMap { env[$0] != nil ? $0 : nil } ?? generic
            guard let raw = env[name] else { continue }
            // A problem names the variable that was set.
            do { try apply(&c, raw) } catch { throw ConfigError(error.key == generic ? name : error.key, error.problem) }
        }
        if let v = env["REDIS_PASSWORD"], !v.isEmpty { c.redis.password = v } // untrimmed: a password is what it is
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
        // PORT is accepted for compatibility and ignored: under FastCGI the
        // web server owns the port.
        if let v = env["PORT"] { _ = try ConfigKey.envInt("PORT", v, min: 0) }
        if c.rateLimit.file.isEmpty { c.rateLimit.file = SharedFiles.defaultDirectory(env: env) + "/ratelimit.bin" }
        if c.documents.cacheDir.isEmpty { c.documents.cacheDir = SharedFiles.stateDirectory(env: env) + "/documents" }
        if c.storage.database.isEmpty { c.storage.database = SharedFiles.stateDirectory(env: env) + "/gateway.db" }
        if let keys = env["VALID_API_KEYS"].map({ $0.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } }) {
            let extra = keys.map { APIKey(sha256: SHA256.hex($0), name: "env-\(SHA256.hex($0).prefix(8))") }
            c.auth.keys += extra.filter { e in !c.auth.keys.contains { $0.sha256 == e.sha256 } }
        }
        return c
    }
}
