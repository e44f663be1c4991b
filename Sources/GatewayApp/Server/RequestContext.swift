import KimiCore

/// Everything a handler needs for one request: the request, the writer, the
/// config snapshot taken at the start (a reload mid-request does not change
/// it), and the headers every response carries (security, CORS, limits).
public final class RequestContext {
    public let request: Request
    public let writer: ResponseWriter
    public let config: GatewayConfig
    public var responseHeaders: [(String, String)] = []
    /// What this chat request used, for the usage ledger (set when it goes upstream).
    var usage: UsageCapture?
    /// The body of a `.streamed` route, to be read by the handler.
    public var bodySource: RequestBodySource?
    /// The values of the matched route's `{name}` segments.
    public var pathParameters: [String: String] = [:]
    /// The authenticated key, when there is one.
    public var apiKey: GatewayConfig.APIKey?
    /// Extra words for the access log line (`client-left`, `key=…`).
    public var logNotes: [String] = []
    /// The upstream key the answer came with, and the attempts it took.
    var upstreamKey: UpstreamKey?
    var upstreamAttempts = 0
    /// The request's trace while tracing is on (`otel.*`), sampled or not.
    var trace: RequestTrace?
    /// What the metrics record at the end beyond status and time.
    struct MetricsNotes {
        /// The policy that refused the request: requests, tokens, budget.
        var rateLimited: String?
        /// Upstream attempts that failed, by class; retries made; the upstream's time.
        var upstreamErrors: [String] = []
        var retries = 0
        var upstreamNanos: UInt64 = 0
    }
    var metricsNotes = MetricsNotes()
    /// The key's concurrency word this request holds (`maxConcurrent`), released when it ends.
    var concurrencySlot: UInt64?
    /// The matched route's pattern (the metrics' `route` label).
    var routePattern: String?
    /// The router's answer for this request, found once by `Gateway.handle`
    /// (matching twice, for the body policy and the middleware, was ~9,000
    /// instructions a request: callgrind).
    var routeMatch: Router<RouteHandler>.Match?
    /// When the request came (monotonic ns): retries start no later than `upstream.retryDeadlineMs` after.
    public let startNanos = Clock.monotonicNanos()

    public init(request: Request, writer: ResponseWriter, config: GatewayConfig) {
        self.request = request
        self.writer = writer
        self.config = config
    }

    /// The matched route's face, else the request's (by its path).
    public var face: APIFace {
        if case let .found(route, _) = routeMatch, let face = route.face { return face }
        return request.face
    }

    /// Who the limits count: the key when there is one, else the address
    /// (`ClientIdentity`; computed once, used by both limits).
    public private(set) lazy var clientIdentity: String = ClientIdentity.of(
        remoteAddr: request.remoteAddr, forwardedFor: request.header("x-forwarded-for"),
        trustedProxies: config.server.trustedProxies, apiKeyHash: apiKey?.sha256)

    public func json(_ status: Int = 200, _ body: JSON, headers: [(String, String)] = []) {
        writer.respondJSON(status: status, body, headers: responseHeaders + headers)
    }

    public func fail(_ error: GatewayError) {
        writer.respond(error: error, face: face, headers: responseHeaders)
    }

    /// Parses the body as a JSON object or fails with a 400 in the face's format.
    public func jsonBody() throws -> JSON {
        if let ct = request.header("content-type"), !ct.isEmpty, !ct.lowercased().hasPrefix("application/json") {
            throw GatewayError.badRequest("Content-Type must be application/json")
        }
        guard !request.body.isEmpty else { throw GatewayError.badRequest("Request body is required (JSON)") }
        let value: JSON
        do { value = try JSON.parse(request.body) } catch { throw GatewayError.badRequest("Request body is not valid JSON: \(error.description)") }
        guard value.objectValue != nil else { throw GatewayError.badRequest("Request body must be a JSON object") }
        return value
    }
}

public typealias RouteHandler = (RequestContext) throws -> Void
