/// The gateway's configuration: embedded defaults, then the JSON file, then
/// environment variables (the names users of the Node.js Kimi backend have in
/// their `.env`). Every key is documented in README.md § Configuration.
public struct GatewayConfig: Sendable, Equatable {
    public struct Model: Sendable, Equatable {
        public var id: String
        public var contextLength: Int
        public init(id: String, contextLength: Int) { self.id = id; self.contextLength = contextLength }
    }

    public struct Upstream: Sendable, Equatable {
        public var baseURL = "https://api.moonshot.cn/v1"
        /// Where `/v1/messages` goes (Kimi's Anthropic face). Empty: each
        /// key's base URL with its trailing `/v1` replaced by `/anthropic`
        /// (`AnthropicMessages.baseURL`).
        public var anthropicBaseURL = ""
        public var apiKey = ""
        /// A PEM CA bundle to verify the upstream with instead of the system's
        /// (a private CA, a TLS-intercepting proxy); empty = system store.
        public var caFile = ""
        /// True when the upstream is the project's simulator (said in /health and banners).
        public var simulated = false
        public var connectTimeoutMs = 10_000
        /// Longest silence tolerated from the upstream before giving up (504).
        public var idleTimeoutMs = 120_000
        /// Longest whole upstream call, streams included (a 1-byte drip
        /// never trips the idle timeout): 504, or an error event.
        public var totalTimeoutMs = 900_000
        public var defaultModel = "moonshot-v1-8k"
        /// With `modelsConfigured`: the operator's allow-list (narrowing the
        /// upstream's list) and the fallback when the upstream's list cannot
        /// be had. Otherwise the built-in table, used only as that fallback
        /// (`ModelCatalogue`).
        public var models: [Model] = KimiModels.catalogue
        /// Whether the config file names `upstream.models`.
        public var modelsConfigured = false
        public var modelsCacheSeconds = 300
        /// Seconds between `: keep-alive` comments while the upstream is silent.
        public var keepAliveSeconds = 15
        /// What /health says about the upstream; derived by `validated()`.
        public var label = "kimi-api (api.moonshot.cn)"
        /// Prices per model, to report cost in the usage views (optional).
        public var prices: [String: Price] = [:]
        /// The key pool: `upstream.keys`, else the comma-separated
        /// `apiKey` (`KIMI_API_KEY`), one key per item; `validated()` fills it,
        /// never empty after (one key "" when none is set).
        public var keys: [UpstreamKey] = []
        /// Whether the config file names `upstream.keys`.
        public var keysConfigured = false
        /// More attempts after the first, before the client has seen a byte.
        public var retries = 2
        /// No attempt starts later than this after the request came.
        public var retryDeadlineMs = 30_000
        /// First backoff (doubles per attempt, up to 4 s, jittered).
        public var retryBackoffMs = 200
        /// No answer head within this long: the attempt failed (retried). 0: `idleTimeoutMs`.
        public var firstByteTimeoutMs = 0
        /// How long a refused key (401, 403) stays out before one request probes it.
        public var disabledKeySeconds = 600

        /// A model's price: its own, else the `"*"` entry's; nil when neither.
        public func price(for model: String) -> Price? { prices[model] ?? prices["*"] }

        /// Every secret the pool holds, for scrubbing upstream messages.
        public var secrets: [String] { keys.map(\.key).filter { !$0.isEmpty } }
    }

    /// A model's price per million tokens, in the operator's currency.
    public struct Price: Sendable, Equatable {
        public var input: Double
        public var cachedInput: Double
        public var output: Double
        public init(input: Double, cachedInput: Double? = nil, output: Double) {
            self.input = input
            self.cachedInput = cachedInput ?? input
            self.output = output
        }

        /// Cost of a request: cached prompt tokens at the cached price.
        public func cost(prompt: Int, cached: Int, completion: Int) -> Double {
            let fresh = max(0, prompt - cached)
            return (Double(fresh) * input + Double(min(max(0, cached), prompt)) * cachedInput + Double(completion) * output) / 1_000_000
        }

        /// The same in millionths of the currency, rounded up (a budget is
        /// never charged less than the cost), held below 2^50.
        public func micros(prompt: Int, cached: Int, completion: Int) -> Int {
            let m = (cost(prompt: max(0, prompt), cached: cached, completion: max(0, completion)) * 1_000_000).rounded(.up)
            return m.isFinite ? Int(min(max(0, m), 1e15)) : Int(1e15)
        }

        /// The most a request of this prompt and completion can cost: no
        /// cache hit (a cached price above the input price counts instead).
        public func worstMicros(prompt: Int, completion: Int) -> Int {
            max(micros(prompt: prompt, cached: 0, completion: completion), micros(prompt: prompt, cached: prompt, completion: completion))
        }
    }

    public struct Server: Sendable, Equatable {
        /// Sized from the models: a prompt for Kimi's largest
        /// context (262,144 tokens) is at most `limits.maxChars` characters,
        /// and 390k CJK characters JSON-escaped (`\uXXXX`, 6 bytes) are
        /// 2.3 MB: 4 MiB carries either. Uploads have their own cap.
        public var maxBodyBytes = 4 << 20
        /// Accepting threads started per process; more are started on demand.
        public var minThreads = 2
        /// Upper bound of threads per process (one per in-flight request).
        public var maxThreads = 512
        public var drainTimeoutMs = 30_000
        /// Longest wait for a FastCGI peer while reading a request's params
        /// and body (a peer that stops mid-request frees its thread).
        public var readTimeoutMs = 30_000
        /// Upstream answers buffered at once by one process (non-stream
        /// calls); the excess is refused with a 502.
        public var maxBufferedBytes = 64 << 20
        /// Addresses whose `X-Forwarded-For` is believed (e.g. a load balancer in front of nginx).
        public var trustedProxies: [String] = []
        /// Run the process's threads under SCHED_BATCH (Linux, no privilege
        /// needed): a gateway thread woken by nginx or the upstream does not
        /// preempt the task running on that CPU (nginx, mid-way through a
        /// batch of events) but waits for it to block or its slice to end.
        /// Measured (two pools side by side, 40 alternating rounds, 32
        /// connections, 2 cores): completion req/s 1.14x (± 0.009), gateway
        /// CPU 85 -> 76 µs a completion; `/health` 1.34x, 26 -> 19 µs;
        /// latency at concurrency 1 unchanged within the noise (an idle CPU
        /// runs the woken thread at once). Off: the kernel's default policy.
        public var batchScheduling = true
    }

    public struct APIKey: Sendable, Equatable {
        /// Lowercase hex SHA-256 of the key; plain keys are hashed at load.
        public var sha256: String
        public var name: String
        /// Empty means every configured model.
        public var models: [String] = []
        public var rateLimit: RateLimitPolicy?
        /// The key's own tokens per minute (`rateLimit.tokensPerMinute`), instead of the default.
        public var tokensPerMinute: Int?
        /// Tokens per UTC day and month, counted from the usage ledger.
        public var budget: Budget?
        /// What the key may call: `.admin` routes need an admin key.
        public var role: Role = .client
        /// In-flight requests of this key at once, on the whole machine; nil: no cap.
        public var maxConcurrent: Int?
        /// A key created at run time (`/api/admin/keys`): its id in the key
        /// store; nil for a config-file key.
        public var id: String?
        /// Unix ms after which the key no longer authenticates (its expiry,
        /// or the end of a rotated-out secret's grace); nil: never.
        public var expiresAtMs: Int64?
        public init(sha256: String, name: String, models: [String] = [], rateLimit: RateLimitPolicy? = nil,
                    tokensPerMinute: Int? = nil, budget: Budget? = nil, role: Role = .client)
        {
            self.sha256 = sha256
            self.name = name
            self.models = models
            self.rateLimit = rateLimit
            self.tokensPerMinute = tokensPerMinute
            self.budget = budget
            self.role = role
        }

        /// The ledger's and the logs' name for the key: never the key itself.
        /// A created key's is fixed by its id, so a rotation keeps its
        /// ledger, budgets and counts.
        public var fingerprint: String { stableFingerprint ?? String(decoding: sha256.utf8.prefix(16), as: UTF8.self) }
        public var stableFingerprint: String?

        public enum Role: String, Sendable, CaseIterable {
            case client
            case admin
        }
    }

    /// A key's budgets: tokens and money per UTC day and
    /// month. Money is in the currency of `upstream.prices`, counted in
    /// millionths (`Price.micros`): every request reserves its worst cost
    /// and settles with its cost, exactly as tokens do (`BudgetCounter`).
    public struct Budget: Sendable, Equatable {
        public var tokensPerDay: Int?
        public var tokensPerMonth: Int?
        public var costPerDay: Double?
        public var costPerMonth: Double?
        public init(tokensPerDay: Int? = nil, tokensPerMonth: Int? = nil, costPerDay: Double? = nil, costPerMonth: Double? = nil) {
            self.tokensPerDay = tokensPerDay
            self.tokensPerMonth = tokensPerMonth
            self.costPerDay = costPerDay
            self.costPerMonth = costPerMonth
        }

        public var hasCost: Bool { costPerDay != nil || costPerMonth != nil }
        /// The largest money budget (a million of the currency): its
        /// millionths fit `BudgetCounter`'s 40-bit count.
        public static let maxCost = 1_000_000.0
    }

    public struct Auth: Sendable, Equatable {
        public var required = false
        public var keys: [APIKey] = []
    }

    public struct CORS: Sendable, Equatable {
        /// Exact origins; `*` only when written explicitly.
        public var allowedOrigins: [String] = ["http://localhost:3000", "http://localhost:5173", "http://localhost:8080"]
        public var maxAgeSeconds = 600
    }

    public struct RateLimitPolicy: Sendable, Equatable {
        public var windowMs: Int
        public var maxRequests: Int
        public init(windowMs: Int, maxRequests: Int) { self.windowMs = windowMs; self.maxRequests = maxRequests }
    }

    public struct RateLimit: Sendable, Equatable {
        public var enabled = true
        public var policy = RateLimitPolicy(windowMs: 900_000, maxRequests: 100)
        /// The memory-mapped file every process on the machine shares; empty
        /// in the config means `SharedFiles.defaultDirectory` + `/ratelimit.bin`,
        /// resolved by `applying(env:)`.
        public var file = ""
        /// Slots in the shared table (one per client key); the stalest are evicted when full.
        public var tableSize = 65_536
        /// The default policy's part of every client key (a changed limit
        /// starts clients afresh); derived by `validated()`.
        public var policyKey = "default:100/900000"
        /// Tokens per minute per client (0: off), a cost-weighted GCRA in
        /// the same shared table: prompt estimate + completion reserved
        /// before the upstream call, settled with the usage after it.
        public var tokensPerMinute = 0
        /// Completion tokens reserved when a request names no `max_tokens`.
        public var completionReserveTokens = 1024
    }

    public struct Limits: Sendable, Equatable {
        public var maxMessages = 200
        /// Kimi's largest context, 262,144 tokens, at up to 4 characters a
        /// token (Latin text; CJK is nearer 1): a longer prompt cannot fit
        /// any model. The context itself is the upstream's to enforce.
        public var maxChars = 1 << 20
        public var maxTokens = 32_768
        /// The body cap of uploads (`POST /v1/files`, documents), streamed
        /// upstream as they arrive: Kimi's own limit per file is 100 MB.
        public var maxFileBytes = 100 << 20
        /// Files a key may keep in the shared upstream account (`/v1/files`;
        /// admin keys are not limited; 0: no limit). One Kimi account holds
        /// 1,000 files and 10 GB for every tenant: without a per-key bound one
        /// key could fill it for all.
        public var maxFilesPerKey = 100
        /// The bytes of those files (an upload counts its body's length until
        /// the upstream reports the file's size; 0: no limit).
        public var maxFileBytesPerKey = 1 << 30
    }

    public struct Documents: Sendable, Equatable {
        /// Extracted texts by the file's SHA-256, shared by all processes.
        /// Empty: `SharedFiles.stateDirectory` + `/documents`.
        public var cacheDir = ""
        /// Least recently used texts go past this many bytes.
        public var cacheBytes = 1 << 30
        /// Tokens kept free for the answer when `model` is `auto`.
        public var answerReserveTokens = 4096
    }

    public struct Storage: Sendable, Equatable {
        /// The SQLite database shared by the machine's processes (file
        /// ownership). Empty: `SharedFiles.stateDirectory` + `/gateway.db`.
        public var database = ""
    }

    public struct Usage: Sendable, Equatable {
        /// Whether chat requests are recorded (budgets need it). Read per
        /// request, so a reload turns the ledger on or off at once.
        public var enabled = true
        /// The ledger's SQLite database. Empty: `storage.database`.
        public var database = ""
        /// How often each process moves its journal into the ledger.
        public var drainIntervalMs = 100
    }

    /// `GET /metrics`.
    public struct Metrics: Sendable, Equatable {
        /// Whether requests are counted (read per request).
        public var enabled = true
        /// Who may scrape without an admin key: addresses or CIDR ranges.
        public var allowFrom: [String] = ["127.0.0.0/8", "::1/128"]
        public var allowFromRanges: [CIDR] = []
        /// The shared table. Empty: `metrics.bin` beside `rateLimit.file`.
        public var file = ""
    }

    /// The log's form: `text` lines, or `json` lines with the
    /// same fields, for log shippers. Reloads in place.
    public struct LogSettings: Sendable, Equatable {
        public enum Format: String, Sendable, CaseIterable { case text, json }
        public var format = Format.text
    }

    /// Where limits and key health live: `file`, the machine's
    /// memory-mapped table (the default); `redis`, one Redis the fleet
    /// shares, with the file as the fallback while Redis is unreachable.
    public struct State: Sendable, Equatable {
        public enum Backend: String, Sendable, CaseIterable { case file, redis }
        public var backend = Backend.file
    }

    public struct Redis: Sendable, Equatable {
        /// `redis://host[:port][/db]` (env `REDIS_URL`).
        public var url = "redis://127.0.0.1:6379/0"
        /// `AUTH` password: env `REDIS_PASSWORD` (or in the URL); never logged.
        public var password = ""
        /// The longest any request waits for Redis (connect, or one call);
        /// slower counts as unreachable and the file decides.
        public var timeoutMs = 50
        /// Every key the gateway writes starts with this.
        public var prefix = "kimi-gateway:"
        /// Parsed from `url` + `password` by `validated()`.
        public var endpoint: RedisEndpoint?
    }

    /// OpenTelemetry traces over OTLP/HTTP (see Tracing). Off while no
    /// endpoint is set; the standard `OTEL_*` variables set these keys.
    public struct OTel: Sendable, Equatable {
        /// Base URL: traces go to `<endpoint>/v1/traces`.
        public var endpoint = ""
        /// The traces URL itself, used as given (wins over `endpoint`).
        public var tracesEndpoint = ""
        /// `name=value` pairs, comma-separated, values percent-decoded (the `OTEL_EXPORTER_OTLP_HEADERS` format).
        public var headers = ""
        public var protocolName = OTLPEncoding.Format.protobuf
        public var serviceName = "kimi-gateway"
        /// `key=value` pairs, comma-separated (`OTEL_RESOURCE_ATTRIBUTES`).
        public var resourceAttributes = ""
        public var sampler = "parentbased_always_on"
        public var samplerArg = ""
        public var disabled = false
        public var captureContent = false
        public var timeoutMs = 10_000
        public var maxQueueSize = 2048
        public var maxExportBatchSize = 512
        public var scheduleDelayMs = 5000
        /// Derived by `validated()`: where spans go ("" = tracing off),
        /// the parsed sampler, headers and resource.
        public var tracesURL = ""
        public var parsedSampler = TraceSampler.parentBased(root: .alwaysOn)
        public var parsedHeaders: [String] = []
        public var resource: [SpanAttribute] = []
        /// Whether requests are traced at all.
        public var enabled: Bool { !tracesURL.isEmpty }
    }

    public var otel = OTel()
    public var state = State()
    public var redis = Redis()
    public var upstream = Upstream()
    public var log = LogSettings()
    public var metrics = Metrics()
    public var storage = Storage()
    public var usage = Usage()
    public var documents = Documents()
    public var server = Server()
    public var auth = Auth()
    public var cors = CORS()
    public var rateLimit = RateLimit()
    public var limits = Limits()

    public init() {}

    public func model(_ id: String) -> Model? { upstream.models.first { $0.id == id } }
}
