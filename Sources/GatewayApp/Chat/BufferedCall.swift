import KimiCore
import Synchronization
import Upstream

/// A non-streaming upstream call: the whole body, bounded twice — by what
/// this answer can weigh (`maxBytes`, from the request) and by what the
/// whole process may hold at once (`BufferBudget`, `server.maxBufferedBytes`).
/// Before both, 48 concurrent 32 MiB answers reached 2.6 GB.
final class BufferedCall: UpstreamReceiver {
    /// For calls whose answer is not a completion (the model list).
    static let defaultMaxBytes = 4 << 20
    private(set) var status = 0
    private(set) var headers: [String: String] = [:]
    private(set) var body: [UInt8] = []
    private let maxBytes: Int
    private let budget: BufferBudget
    private var reserved = 0
    private var refusal: GatewayError?

    init(maxBytes: Int, budget: BufferBudget) {
        self.maxBytes = maxBytes
        self.budget = budget
    }

    deinit { budget.release(reserved) }

    func upstreamHead(status: Int, headers: [String: String]) -> Bool {
        self.status = status
        self.headers = headers
        return true
    }

    func upstreamData(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard body.count + bytes.count <= maxBytes else {
            refusal = .upstreamFailed("Upstream answer larger than \(maxBytes) bytes (more than the request's max_tokens can produce)")
            return false
        }
        // Reserve in 256 KiB steps: one atomic add per step, not per chunk.
        if body.count + bytes.count > reserved {
            let step = max(256 << 10, bytes.count)
            guard budget.reserve(step) else {
                refusal = .upstreamFailed("The gateway is buffering too many upstream answers at once (server.maxBufferedBytes); retry shortly")
                return false
            }
            reserved += step
        }
        body.append(contentsOf: bytes)
        return true
    }

    func upstreamTick() -> Bool { true }

    /// One attempt through the pool (`RequestContext.withUpstreamKey`):
    /// the answer, or the failure classified for the retry rules.
    /// `answered`: statuses besides 2xx that are an answer, not a failure
    /// (the caller reads them: a 404 from an endpoint the upstream lacks).
    static func attempt(_ req: UpstreamRequest, key: UpstreamKey, budget: BufferBudget, maxBytes: Int,
                        ctx: RequestContext?, answered: Set<Int> = [], transport: UpstreamTransport? = nil) -> RequestContext.Attempt<BufferedCall>
    {
        let call = BufferedCall(maxBytes: maxBytes, budget: budget)
        let client = transport ?? UpstreamClient.forCurrentThread()
        defer { ctx?.noteUpstreamVersion(client) }
        switch client.perform(req, receiver: call) {
        case .completed: break
        case .abortedByReceiver:
            // The upstream answered (and billed it); the gateway dropped it.
            if (200..<300).contains(call.status) { ctx?.usage?.answerDropped = true }
            return .failed(.final, call.refusal ?? .upstreamFailed("Upstream transfer aborted"))
        case let .failed(f): return .failed(UpstreamAttempts.classify(f), UpstreamErrorMapping.map(f))
        }
        if answered.contains(call.status) { return .done(call) }
        guard (200..<300).contains(call.status) else {
            let retryAfter = call.headers["retry-after"]
            return .failed(UpstreamAttempts.classify(status: call.status, type: UpstreamErrorMapping.errorType(call.body), retryAfter: retryAfter),
                           UpstreamErrorMapping.map(status: call.status, body: call.body, retryAfter: retryAfter, apiKey: key.key))
        }
        if let announced = call.headers["content-length"].flatMap({ Int($0) }), announced != call.body.count {
            return .failed(.dropped, .upstreamFailed("Upstream answer has \(call.body.count) bytes, its Content-Length says \(announced)"))
        }
        ctx?.traceAnswer(call.body)
        return .done(call)
    }

    /// One call without the pool's health or retries (the model list,
    /// fetched in the background): the answer or the mapped error.
    static func run(_ req: UpstreamRequest, key: UpstreamKey, budget: BufferBudget, maxBytes: Int = defaultMaxBytes) throws(GatewayError) -> BufferedCall {
        switch attempt(req, key: key, budget: budget, maxBytes: maxBytes, ctx: nil) {
        case let .done(call): return call
        case let .failed(_, e): throw e
        }
    }
}
