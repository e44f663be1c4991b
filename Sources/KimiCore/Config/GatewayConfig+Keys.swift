/// Every config key, declared once (`ConfigKey`), in the README's order.
/// Keys of the form `section.leaf`; a section's keys are the only ones its
/// object may hold (an unknown key is an error that lists them).
extension GatewayConfig {
    public static let keys: [ConfigKey] = [
        // upstream
        .string("upstream.baseURL", \.upstream.baseURL, env: "KIMI_BASE_URL",
                "Kimi API base; https only (http only for loopback, i.e. the simulator)"),
        .string("upstream.anthropicBaseURL", \.upstream.anthropicBaseURL, default: "each key's base URL with `/v1` → `/anthropic`",
                "where `/v1/messages` goes (Kimi's Anthropic-compatible endpoint); https only (http for loopback)"),
        .string("upstream.apiKey", \.upstream.apiKey,
                "the Kimi key, or several comma-separated (a pool; replaces `upstream.keys`); never in a response, log line or error. Env: `KIMI_API_KEY` (below)"),
        .envOnly("KIMI_API_KEY", "`upstream.apiKey` from the environment: one key, or a comma-separated pool that replaces `upstream.keys`"),
        .structured("upstream.keys", default: "the `apiKey` items",
                    "the key pool: `{\"key\"}` or `{\"keyEnv\":\"VAR\"}`, `\"name\"`, `\"weight\"` (1–1000), `\"baseURL\"` (its account's endpoint, e.g. `https://api.moonshot.ai/v1`); see Upstream resilience",
                    { c, v throws(ConfigError) in try GatewayConfig.readUpstreamKeys(&c, v) }),
        .int("upstream.retries", \.upstream.retries, min: 0, "more attempts after the first, only before the client has seen a byte"),
        .int("upstream.retryDeadlineMs", \.upstream.retryDeadlineMs, min: 0, "no attempt starts later than this after the request came"),
        .int("upstream.retryBackoffMs", \.upstream.retryBackoffMs, min: 1,
             "first backoff; doubles per attempt up to 4 s, jittered (half fixed, half random); an overload's `Retry-After` is honoured"),
        .int("upstream.firstByteTimeoutMs", \.upstream.firstByteTimeoutMs, min: 0, default: "`0` (= `idleTimeoutMs`)",
             "no answer head within this long: the attempt failed (retried)"),
        .int("upstream.disabledKeySeconds", \.upstream.disabledKeySeconds, min: 1,
             "how long a key the upstream refused (401, 403) stays out before one request probes it"),
        .string("upstream.caFile", \.upstream.caFile, default: "system store",
                "PEM bundle to verify the upstream with (a private CA); verification is always on"),
        .bool("upstream.simulated", \.upstream.simulated, env: "KIMI_SIMULATED", "says in `/health` and banners that the upstream is the simulator"),
        .string("upstream.defaultModel", \.upstream.defaultModel, env: "KIMI_DEFAULT_MODEL", "model when a request names none"),
        .structured("upstream.models", default: "the upstream's list",
                    "narrows the upstream's list (`\"id\"` or `{\"id\",\"contextLength\"}`); other models are a 400; also what is served when the upstream's list cannot be had (else the built-in table)",
                    { c, v throws(ConfigError) in try GatewayConfig.readModels(&c, v) }),
        .int("upstream.connectTimeoutMs", \.upstream.connectTimeoutMs, min: 1, "upstream connect timeout (→ 502)"),
        .int("upstream.idleTimeoutMs", \.upstream.idleTimeoutMs, min: 1, "longest upstream silence (→ 504)"),
        .int("upstream.totalTimeoutMs", \.upstream.totalTimeoutMs, min: 1,
             "longest whole upstream call, streams included (→ 504, or an error event once a stream has begun): a 1-byte drip never trips the idle timeout"),
        .int("upstream.keepAliveSeconds", \.upstream.keepAliveSeconds, min: 1, "`: keep-alive` SSE comment while the upstream is silent"),
        .int("upstream.modelsCacheSeconds", \.upstream.modelsCacheSeconds, min: 0, "cache of the upstream's `/models`"),
        .structured("upstream.prices", default: "none",
                    "per model (or `\"*\"`) `{\"input\",\"cachedInput\"?,\"output\"}` per million tokens: cost in the ledger and the usage reports; needed by money budgets",
                    { c, v throws(ConfigError) in try GatewayConfig.readPrices(&c, v) }),
        // server
        .int("server.maxBodyBytes", \.server.maxBodyBytes, min: 1, env: "MAX_BODY_BYTES",
             "body cap, checked from `CONTENT_LENGTH` before reading (→ 413); sized so a prompt for Kimi's largest context fits (390k CJK characters JSON-escaped are 2.3 MB); nginx's `client_max_body_size` matches"),
        .int("server.minThreads", \.server.minThreads, min: 1, reload: .restart, "worker threads a process starts with (see Architecture)"),
        .int("server.maxThreads", \.server.maxThreads, min: 1, reload: .restart, "worker threads a process may grow to"),
        .int("server.drainTimeoutMs", \.server.drainTimeoutMs, min: 0, "how long SIGTERM waits for in-flight requests"),
        .int("server.readTimeoutMs", \.server.readTimeoutMs, min: 1, reload: .restart,
             "longest silence from a FastCGI peer while it sends a request (params, body); also the send timeout"),
        .int("server.maxBufferedBytes", \.server.maxBufferedBytes, min: 1 << 20,
             "upstream answers (non-stream) one process holds at once; the excess → 502"),
        .strings("server.trustedProxies", \.server.trustedProxies, env: "TRUSTED_PROXIES",
                 "peers whose `X-Forwarded-For` is believed (env: comma-separated)"),
        .bool("server.batchScheduling", \.server.batchScheduling, reload: .restart,
              "every thread of a worker runs under Linux's `SCHED_BATCH` (no privilege needed): a woken gateway thread waits for the task on its CPU (often nginx) to block instead of preempting it. Measured on 2 cores: completions 1.14× the req/s at 11 % less CPU, `/health` 1.34×, latency at concurrency 1 unchanged. The price: on a saturated CPU a woken thread (a stream's next event too) may wait out the running task's slice, a few ms at most. `false` keeps the kernel's default policy (see Performance)"),
        // auth, CORS
        .bool("auth.required", \.auth.required, env: "REQUIRE_API_KEY", "require a client key on everything but `/health` and preflights"),
        .structured("auth.keys", default: "`[]`",
                    "`{\"key\"}` or `{\"sha256\"}` (from `kimi-gateway hash-key`), `\"name\"`, `\"models\"`, `\"rateLimit\":{\"windowMs\",\"maxRequests\",\"tokensPerMinute\"}`, `\"budget\":{\"tokensPerDay\",\"tokensPerMonth\",\"costPerDay\",\"costPerMonth\"}`, `\"maxConcurrent\"` (requests in flight on the machine), `\"note\"`, `\"role\"`: `\"client\"` (default) or `\"admin\"` (the only keys that reach admin routes; with none configured or created they answer 403). Keys can also be created at run time (see Keys as data)",
                    { c, v throws(ConfigError) in try GatewayConfig.readClientKeys(&c, v) }),
        .envOnly("VALID_API_KEYS", "client keys added to `auth.keys`, comma-separated"),
        .strings("cors.allowedOrigins", \.cors.allowedOrigins, env: "ALLOWED_ORIGINS",
                 "exact origins (no path, no trailing slash); `*` only if written (env: comma-separated)"),
        .int("cors.maxAgeSeconds", \.cors.maxAgeSeconds, min: 0, "preflight cache"),
        // rate limits
        .bool("rateLimit.enabled", \.rateLimit.enabled, "the request and token limits (budgets and `maxConcurrent` hold either way)"),
        .int("rateLimit.windowMs", \.rateLimit.policy.windowMs, min: 1, env: "RATE_LIMIT_WINDOW_MS",
             "the default policy's window (as the Node backend)"),
        .int("rateLimit.maxRequests", \.rateLimit.policy.maxRequests, min: 1, env: "RATE_LIMIT_MAX_REQUESTS",
             "requests per window; at most one request per microsecond of the window (the limiter counts in µs: a finer limit is refused at load rather than quietly admitting less)"),
        .string("rateLimit.file", \.rateLimit.file, env: "RATE_LIMIT_FILE", reload: .restart,
                default: "`/run/kimi-gateway/ratelimit.bin` when that directory is this user's (the systemd unit's RuntimeDirectory) or can be created, else `$XDG_RUNTIME_DIR/kimi-gateway/`, else `/tmp/kimi-gateway-<uid>/` (0700)",
                "the shared memory-mapped table (created 0600; see Rate limit)"),
        .int("rateLimit.tableSize", \.rateLimit.tableSize, min: 64, reload: .restart, "client slots (16 bytes each; a client with a token limit uses two)"),
        .int("rateLimit.tokensPerMinute", \.rateLimit.tokensPerMinute, min: 0, env: "RATE_LIMIT_TOKENS_PER_MINUTE", default: "`0` (off)",
             "tokens per client per minute (see Usage ledger, token limits and budgets)"),
        .int("rateLimit.completionReserveTokens", \.rateLimit.completionReserveTokens, min: 1,
             "completion tokens reserved when a request names no `max_tokens`"),
        // usage, logs, state
        .bool("usage.enabled", \.usage.enabled, "the usage ledger (budgets need it)"),
        .string("usage.database", \.usage.database, env: "USAGE_DATABASE", reload: .restart, default: "`storage.database`",
                "the usage ledger's SQLite database (its journals in `journal/` beside it)"),
        .int("usage.drainIntervalMs", \.usage.drainIntervalMs, min: 1, reload: .restart, "how often each process moves its journal into the ledger"),
        .choice("log.format", \.log.format, env: "LOG_FORMAT",
                "`json`: every log line (access lines, the supervisor's, errors) as one JSON object with the same fields (see Logs); reloads in place",
                parse: { v, key throws(ConfigError) in try LogSettings.Format.parse(v, key: key) }),
        .choice("state.backend", \.state.backend, env: "STATE_BACKEND",
                "`redis`: limits, token limits, budgets, created keys and upstream key health shared by a fleet through one Redis, the file as the fallback (see A fleet of machines)",
                parse: { v, key throws(ConfigError) in try State.Backend.parse(v, key: key) }),
        .string("redis.url", \.redis.url, env: "REDIS_URL", "`redis://host[:port][/db]`"),
        .envOnly("REDIS_PASSWORD", default: "none", "`AUTH` password (never logged; a password in the URL works too)"),
        .int("redis.timeoutMs", \.redis.timeoutMs, min: 1, "the longest a request waits for Redis (connect or one call)"),
        .string("redis.prefix", \.redis.prefix, "every Redis key written starts with it"),
        // metrics
        .bool("metrics.enabled", \.metrics.enabled, "the machine's metrics (see Metrics)"),
        .strings("metrics.allowFrom", \.metrics.allowFrom, "who may read `/metrics` without an admin key (CIDR ranges)"),
        .string("metrics.file", \.metrics.file, default: "`metrics.bin` beside `rateLimit.file`", "the machine's metrics table"),
        // limits, documents, storage
        .int("limits.maxFileBytes", \.limits.maxFileBytes, min: 1, default: "`104857600` (100 MiB)", "body cap of uploads (streamed, never held)"),
        .int("limits.maxFilesPerKey", \.limits.maxFilesPerKey, min: 0,
             "files a key may keep in the shared upstream account through `/v1/files` (admin keys: no limit; 0: no limit); over it, 403 `file_quota_exceeded` before anything goes upstream"),
        .int("limits.maxFileBytesPerKey", \.limits.maxFileBytesPerKey, min: 0, default: "`1073741824` (1 GiB)", "bytes of files a key may keep there, likewise"),
        .string("documents.cacheDir", \.documents.cacheDir, reload: .restart, default: "state dir + `/documents`", "the shared cache of extracted document texts"),
        .int("documents.cacheBytes", \.documents.cacheBytes, min: 0, reload: .restart, default: "`1073741824` (1 GiB)", "its size"),
        .int("documents.answerReserveTokens", \.documents.answerReserveTokens, min: 1, "tokens kept for the answer when `model` is `auto`"),
        .string("storage.database", \.storage.database, env: "KIMI_DATABASE", reload: .restart,
                default: "`/var/lib/kimi-gateway/gateway.db` as root, else `$XDG_STATE_HOME` or `~/.local/state/kimi-gateway/gateway.db`",
                "SQLite database of file owners, created keys and, by default, the usage ledger"),
        .int("limits.maxMessages", \.limits.maxMessages, min: 1, "messages in a chat, checked before any upstream call (→ 400)"),
        .int("limits.maxChars", \.limits.maxChars, min: 1,
             "characters in a chat (Unicode scalars: a letter plus 500k combining marks is 500,001); Kimi's largest context (262,144 tokens) at 4 characters a token"),
        .int("limits.maxTokens", \.limits.maxTokens, min: 1, "the largest `max_tokens` a request may name"),
        // OpenTelemetry (see Tracing)
        .string("otel.endpoint", \.otel.endpoint, env: "OTEL_EXPORTER_OTLP_ENDPOINT", default: "— (tracing off)",
                "OTLP/HTTP base URL (e.g. `http://collector:4318`): spans go to `<endpoint>/v1/traces`"),
        .string("otel.tracesEndpoint", \.otel.tracesEndpoint, env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "the traces URL as given (wins over `otel.endpoint`)"),
        .string("otel.headers", \.otel.headers, env: "OTEL_EXPORTER_OTLP_HEADERS",
                "headers of every export, `name=value` comma-separated, values percent-encoded (a collector's token: never logged)"),
        .choice("otel.protocol", \.otel.protocolName, env: "OTEL_EXPORTER_OTLP_PROTOCOL", "`http/protobuf` or `http/json` (gRPC is not spoken)",
                parse: { v, key throws(ConfigError) in try OTLPEncoding.Format.parse(v, key: key) }),
        .string("otel.serviceName", \.otel.serviceName, env: "OTEL_SERVICE_NAME", "the resource's `service.name`"),
        .string("otel.resourceAttributes", \.otel.resourceAttributes, env: "OTEL_RESOURCE_ATTRIBUTES",
                "more resource attributes, `key=value` comma-separated (`deployment.environment.name=prod`)"),
        .string("otel.sampler", \.otel.sampler, env: "OTEL_TRACES_SAMPLER",
                "`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`: a request with a `traceparent` follows its sampled flag under the `parentbased_` ones"),
        .string("otel.samplerArg", \.otel.samplerArg, env: "OTEL_TRACES_SAMPLER_ARG", default: "`1.0`", "the ratio of the `traceidratio` samplers, 0–1"),
        .bool("otel.disabled", \.otel.disabled, env: "OTEL_SDK_DISABLED", "no tracing whatever the endpoint"),
        .bool("otel.captureContent", \.otel.captureContent, env: "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
              "prompts and answers in the client spans (`gen_ai.input.messages` up to 64 KiB, the latest messages; `gen_ai.output.messages`, an answer's text up to 16 KiB); off, spans carry no content"),
        .int("otel.timeoutMs", \.otel.timeoutMs, min: 1, env: "OTEL_EXPORTER_OTLP_TIMEOUT", "the longest one export may take (its batch is dropped and counted after)"),
        .int("otel.maxQueueSize", \.otel.maxQueueSize, min: 1, env: "OTEL_BSP_MAX_QUEUE_SIZE",
             "spans a process holds for export; beyond, new spans are dropped and counted (`kimi_gateway_otel_spans_dropped_total`)"),
        .int("otel.maxExportBatchSize", \.otel.maxExportBatchSize, min: 1, env: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "spans in one export"),
        .int("otel.scheduleDelayMs", \.otel.scheduleDelayMs, min: 1, env: "OTEL_BSP_SCHEDULE_DELAY", "the longest a span waits before its batch is sent"),
        .envOnly("PORT", "accepted for `.env` compatibility, ignored (the web server owns the port)"),
    ]
}

// MARK: the structured keys' readers

extension GatewayConfig {
    static func readUpstreamKeys(_ c: inout GatewayConfig, _ v: JSON) throws(ConfigError) {
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

    static func readModels(_ c: inout GatewayConfig, _ v: JSON) throws(ConfigError) {
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

    static func readPrices(_ c: inout GatewayConfig, _ v: JSON) throws(ConfigError) {
        for (model, p) in try ConfigReader(prefix: "upstream.prices.").object(v) {
            let pr = ConfigReader(prefix: "upstream.prices.\(HeaderSafety.printable(model, max: 60)).")
            let po = try pr.object(p)
            try pr.check(po, known: ["input", "cachedInput", "output"])
            guard let i = p["input"], let out = p["output"] else {
                throw ConfigError("upstream.prices.\(HeaderSafety.printable(model, max: 60))", "needs input and output (per million tokens)")
            }
            c.upstream.prices[model] = Price(input: try pr.price(i, "input"),
                                             cachedInput: try p["cachedInput"].map { v throws(ConfigError) in try pr.price(v, "cachedInput") },
                                             output: try pr.price(out, "output"))
        }
    }

    static func readClientKeys(_ c: inout GatewayConfig, _ v: JSON) throws(ConfigError) {
        guard let items = v.arrayValue else { throw ConfigError("auth.keys", "must be an array, got \(v.typeName)") }
        c.auth.keys = try items.enumerated().map { (i, item) throws(ConfigError) in try APIKey.parse(item, key: "auth.keys[\(i)]") }
    }
}
