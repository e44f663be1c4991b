import CAtomics
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
        registerRoutes()
    }

    public func add(_ method: String, _ path: String, _ handler: @escaping RouteHandler) {
        router.add(method, path, handler)
    }

    /// Entry point from the worker pool.
    public func handle(exchange: FastCGIExchange) {
        let start = Clock.monotonicNanos()
        let requestID = RequestID.from(exchange.params["HTTP_X_REQUEST_ID"])
        var request = Request.head(params: exchange.params, requestID: requestID)
        let config = configCache.current()
        let ctx = RequestContext(request: request, writer: exchange, config: config)
        // The helmet set goes on every response, pre-serialized.
        exchange.fixedHead = SecurityHeaders.serialized
        ctx.responseHeaders = [("X-Request-Id", requestID)]

        switch ContentLength.parse(exchange.params["CONTENT_LENGTH"], cap: config.server.maxBodyBytes) {
        case let .failure(e):
            ctx.fail(e)
        case let .success(length):
            if let body = exchange.readBody(count: length) {
                request.body = body
                let full = RequestContext(request: request, writer: exchange, config: config)
                full.responseHeaders = ctx.responseHeaders
                dispatch(full)
                ctx.logNotes = full.logNotes
            } else {
                ctx.fail(.badRequest("Request body is shorter than its Content-Length"))
            }
        }
        if !exchange.headWritten { ctx.fail(.internalError()) }
        exchange.flush()
        AccessLog.write(request: request, status: exchange.status, bytes: exchange.bytesWritten,
                        nanos: Clock.monotonicNanos() &- start, notes: ctx.logNotes + (exchange.clientGone ? ["client-left"] : []))
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

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

public enum Version {
    public static let current = "0.1.0"
}

/// Request ids: the client's `X-Request-Id` when it is short and plain,
/// otherwise a fresh random one.
public enum RequestID {
    public static func from(_ header: String?) -> String {
        if let h = header, (1...64).contains(h.utf8.count),
           h.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E })
        {
            return h
        }
        return fresh()
    }

    /// splitmix64 over a randomly seeded counter: unique per process, no
    /// syscall per request (getrandom costs more than the rest of /health)
    /// and no lock (a preempted lock holder stalls every worker thread).
    private static let counter: UnsafeMutablePointer<UInt64> = {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        var g = SystemRandomNumberGenerator()
        p.initialize(to: g.next())
        return p
    }()

    public static func fresh() -> String {
        var z = kimi_atomic_add64(counter, 0x9E37_79B9_7F4A_7C15) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return String(unsafeUninitializedCapacity: 16) { buf in
            let hex = Array("0123456789abcdef".utf8)
            for i in 0..<16 { buf[i] = hex[Int((z >> UInt64(60 - i * 4)) & 0xF)] }
            return 16
        }
    }
}

/// One line per request on stderr: method, path, status, bytes, duration,
/// request id and notes. No header values, no bodies, no keys.
public enum AccessLog {
    /// Built on bytes: it runs for every request.
    public static func write(request: Request, status: Int, bytes: Int, nanos: UInt64, notes: [String]) {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        func add(_ s: String) { line.append(contentsOf: s.utf8) }
        func int(_ v: Int) { add(String(v)) }
        add(Clock.iso8601())
        add(" access ")
        add(HeaderSafety.printable(request.method, max: 16)); line.append(0x20)
        add(HeaderSafety.printable(request.path, max: 200)); line.append(0x20)
        int(status); line.append(0x20)
        int(bytes); add("B ")
        let micros = Int(nanos / 1000)
        int(micros / 1000); line.append(0x2E)
        let frac = micros % 1000
        if frac < 100 { line.append(0x30) }
        if frac < 10 { line.append(0x30) }
        int(frac); add("ms rid=")
        add(request.requestID)
        add(" ip=")
        add(HeaderSafety.printable(request.remoteAddr, max: 64))
        for n in notes { line.append(0x20); add(n) }
        Log.writeLine(line)
    }
}
