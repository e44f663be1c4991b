import FastCGI
import Glibc
import KimiCore

/// The request pipeline: head → body (strictly bounded) → security headers →
/// CORS → route → auth → rate limit → handler, with every failure turned
/// into a response in the face's format and one access-log line per request.
public final class Gateway: @unchecked Sendable {
    public let configCache: ConfigCache
    public private(set) var router = Router<RouteHandler>()
    public let version: String
    public let services: Services

    public init(configCache: ConfigCache, services: Services, version: String = Version.current) {
        self.configCache = configCache
        self.version = version
        self.services = services
        // Created keys follow the fleet's Redis while the config names one.
        services.keys?.fleetSource = { [configCache, limiter = services.limiter] in limiter.fleetStore(for: configCache.current()) }
        registerRoutes()
    }

    public func add(_ method: String, _ path: String, access: Access, servesWhenSaturated: Bool = false,
                    body: BodyPolicy = .buffered, face: APIFace? = nil, _ handler: @escaping RouteHandler)
    {
        router.add(method, path, access: access, servesWhenSaturated: servesWhenSaturated, body: body, face: face, handler)
    }

    /// Entry point from the worker pool.
    public func handle(exchange: FastCGIExchange) {
        let start = Clock.monotonicNanos()
        let requestID = RequestID.from(exchange.params.headers["x-request-id"])
        let config = configCache.current()
        // One look-up of the metrics table for the request's events (two cost ~1,700 instructions).
        let metrics = config.metrics.enabled ? services.metrics.batch(config) : nil
        metrics?.inFlight(by: 1)
        // The body is read (or refused) before the context is built, so there is one.
        var request = exchange.head(requestID: requestID)
        var refusal: GatewayError?
        var bodySource: RequestBodySource?
        let match = router.match(method: request.method, path: request.path)
        var bodyPolicy = BodyPolicy.buffered
        if case let .found(route, _) = match { bodyPolicy = route.body }
        switch bodyPolicy {
        case .buffered:
            refusal = exchange.readBody(into: &request, maxBodyBytes: config.server.maxBodyBytes)
        case .streamed:
            switch ContentLength.parse(exchange.params.contentLength, cap: config.limits.maxFileBytes) {
            case let .failure(e): refusal = e
            case let .success(length): bodySource = exchange.bodyStream(length: length)
            }
        }
        let ctx = RequestContext(request: request, writer: exchange, config: config)
        ctx.routeMatch = match
        ctx.bodySource = bodySource
        // The helmet set goes on every response, pre-serialized.
        exchange.fixedHead = SecurityHeaders.serialized
        ctx.responseHeaders = [("X-Request-Id", requestID)]
        if config.otel.enabled {
            ctx.beginTrace(traceparent: exchange.params.headers["traceparent"], tracestate: exchange.params.headers["tracestate"])
        }
        if let refusal {
            ctx.fail(refusal)
        } else if exchange.overloaded, router.anyRoute(path: request.path)?.servesWhenSaturated != true {
            // The reserve thread: every other thread is busy. A quick 503 in
            // the face's format beats a wait behind long streams.
            ctx.logNotes.append("overloaded")
            ctx.fail(.overloaded(retryAfter: 1))
        } else {
            dispatch(ctx)
        }
        if !exchange.headWritten { ctx.fail(.internalError()) }
        // The usage row reaches this process's journal before the response ends.
        if let capture = ctx.usage { services.recordUsage(capture, ctx: ctx, status: exchange.status, clientLeft: exchange.clientGone, startNanos: start) }
        services.releaseConcurrency(ctx)
        ctx.finishTrace(services, status: exchange.status, clientLeft: exchange.clientGone)
        // A streamed body the handler did not read to its end (a refused
        // upload): up to `lingerBytes` of it are read and dropped, so the
        // web server can finish sending it and take the answer — closing
        // while it still wrote the body made it answer 502 instead of the
        // 403 (lighttpd, one upload in a few hundred refused at once).
        // More than that stays in the connection, which is closed.
        if let bodySource, bodySource.remaining > 0 {
            if !Self.discard(bodySource, upTo: Self.lingerBytes) { exchange.closeConnection = true }
        }
        // No flush here: FCGX_Finish_r flushes with the end-of-request record (one write, not two).
        let nanos = Clock.monotonicNanos() &- start
        AccessLog.write(request: request, status: exchange.status, bytes: exchange.bytesWritten,
                        nanos: nanos, notes: ctx.logNotes + (exchange.clientGone ? ["client-left"] : []))
        if let metrics { count(ctx, metrics, status: exchange.status, nanos: nanos, clientLeft: exchange.clientGone) }
    }

    /// The most of a refused body read and dropped to end its request cleanly (a millisecond's reading).
    static let lingerBytes = 1 << 20

    /// Reads and drops the rest of `body` if it is at most `limit` bytes;
    /// true when it was read to its end.
    static func discard(_ body: RequestBodySource, upTo limit: Int) -> Bool {
        guard body.remaining <= limit else { return false }
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        while body.remaining > 0 {
            let n = scratch.withUnsafeMutableBytes { body.read(into: $0) }
            guard let n, n > 0 else { return false }
        }
        return true
    }

    /// The request in the machine's metrics. Labels are bounded:
    /// the route's pattern (`unmatched` for none), a known method, the status.
    private func count(_ ctx: RequestContext, _ b: GatewayMetrics.Batch, status: Int, nanos: UInt64, clientLeft: Bool) {
        b.inFlight(by: -1)
        let route = ctx.routePattern ?? router.anyRoute(path: ctx.request.path)?.path ?? "unmatched"
        let (method, methodCode) = Self.countedMethod(ctx.request.method)
        // Each label string hashed once for every family it labels (as
        // one mix a family it was ~1,000 instructions a completion).
        let routeKey = GatewayMetrics.Key.label(route)
        let byRoute = Family.requestDuration.mixing(routeKey)
        b.add(Family.requests.mixing(routeKey).mixing(methodCode).mixing(status)) {
            PrometheusText.series("requests_total", [("route", route), ("method", method), ("status", String(status))])
        }
        b.observe(byRoute, "request_duration_seconds", seconds: Double(nanos) / 1e9) { [("route", route)] }
        let notes = ctx.metricsNotes
        if let policy = notes.rateLimited {
            b.add(Family.rateLimited.mixing(policy)) { PrometheusText.series("rate_limited_total", [("policy", policy)]) }
        }
        for e in notes.upstreamErrors {
            b.add(Family.upstreamErrors.mixing(e)) { PrometheusText.series("upstream_errors_total", [("type", e)]) }
        }
        if notes.retries > 0 { b.add(Family.upstreamRetries, UInt64(notes.retries)) { PrometheusText.series("upstream_retries_total") } }
        guard let capture = ctx.usage else { return }
        let model = capture.model
        let modelKey = GatewayMetrics.Key.label(model)
        if clientLeft && capture.stream { b.add(Family.clientLeft) { PrometheusText.series("stream_client_left_total") } }
        if notes.upstreamNanos > 0 {
            b.observe(Family.upstreamDuration.mixing(modelKey), "upstream_duration_seconds", seconds: Double(notes.upstreamNanos) / 1e9) { [("model", model)] }
        }
        if let first = capture.firstTokenNanos, capture.stream {
            b.observe(Family.timeToFirstToken.mixing(modelKey), "time_to_first_token_seconds", seconds: Double(first &- ctx.startNanos) / 1e9) { [("model", model)] }
        }
        guard let t = capture.reported else { return }
        func tokens(_ kind: String, _ code: Int, _ n: Int) {
            guard n > 0 else { return }
            b.add(Family.tokens.mixing(modelKey).mixing(code), UInt64(n)) { PrometheusText.series("tokens_total", [("model", model), ("kind", kind)]) }
        }
        tokens("prompt", 0, t.prompt)
        tokens("completion", 1, t.completion)
    }

    /// The families' keys, hashed once.
    private enum Family {
        typealias Key = GatewayMetrics.Key
        static let requests = Key("requests_total"), requestDuration = Key("request_duration_seconds")
        static let rateLimited = Key("rate_limited_total"), upstreamErrors = Key("upstream_errors_total")
        static let upstreamRetries = Key("upstream_retries_total"), clientLeft = Key("stream_client_left_total")
        static let upstreamDuration = Key("upstream_duration_seconds"), timeToFirstToken = Key("time_to_first_token_seconds")
        static let tokens = Key("tokens_total")
    }

    /// The method as its label, `other` for one not listed (a `Set<String>`
    /// look-up hashed the method: ~220 instructions a request, callgrind).
    /// Its code tells the series apart in the metrics' per-thread cache.
    private static func countedMethod(_ m: String) -> (label: String, code: Int) {
        switch m {
        case "GET": return (m, 1)
        case "POST": return (m, 2)
        case "DELETE": return (m, 3)
        case "OPTIONS": return (m, 4)
        case "PUT": return (m, 5)
        case "PATCH": return (m, 6)
        case "HEAD": return (m, 7)
        default: return ("other", 0)
        }
    }

    /// Routing, middleware and the handler, for a request whose body is read.
    /// Public so tests can drive it with a `BufferedResponse`.
    public func dispatch(_ ctx: RequestContext) {
        do {
            try Middleware.run(ctx, gateway: self)
        } catch let e as GatewayError {
            finish(ctx, with: e)
        } catch {
            Log.error("rid=\(ctx.request.requestID) handler failed: \(HeaderSafety.printable(String(describing: error), max: 300))")
            finish(ctx, with: .internalError())
        }
    }

    private func finish(_ ctx: RequestContext, with e: GatewayError) {
        if ctx.writer.headWritten { ctx.usage?.failed = true }
        if !ctx.writer.headWritten {
            ctx.fail(e)
        } else if !ctx.writer.clientGone {
            // Headers already went out (a stream): the error is one last event.
            ctx.writer.write(e.sseEvent(for: ctx.face))
            ctx.writer.flush()
        }
        if e.status >= 500 { ctx.logNotes.append("error=\(HeaderSafety.printable(e.message, max: 120).replacingSpaces())") }
    }
}
