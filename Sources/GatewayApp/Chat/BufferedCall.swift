import KimiCore
import Synchronization
import Upstream

/// A non-streaming upstream call: the whole body, bounded twice — by what
/// this answer can weigh (`maxBytes`, from the request) and by what the
/// whole process may hold at once (`BufferBudget`, `server.maxBufferedBytes`).
/// Before both, 48 concurrent 32 MiB answers reached 2.6 GB (issue #9).
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

    /// Runs the call; a transport failure or a non-2xx answer becomes the
    /// mapped `GatewayError`. A 2xx answer shorter than its Content-Length
    /// is a 502, never passed on.
    static func run(_ req: UpstreamRequest, apiKey: String, budget: BufferBudget, maxBytes: Int = defaultMaxBytes,
                    ctx: RequestContext? = nil) throws(GatewayError) -> BufferedCall
    {
        let call = BufferedCall(maxBytes: maxBytes, budget: budget)
        let client = UpstreamClient.forCurrentThread()
        defer { ctx?.noteUpstreamVersion(client) }
        switch client.perform(req, receiver: call) {
        case .completed: break
        case .abortedByReceiver: throw call.refusal ?? .upstreamFailed("Upstream transfer aborted")
        case let .failed(f): throw UpstreamErrorMapping.map(f)
        }
        guard (200..<300).contains(call.status) else {
            throw UpstreamErrorMapping.map(status: call.status, body: call.body, retryAfter: call.headers["retry-after"], apiKey: apiKey)
        }
        if let announced = call.headers["content-length"].flatMap({ Int($0) }), announced != call.body.count {
            throw .upstreamFailed("Upstream answer has \(call.body.count) bytes, its Content-Length says \(announced)")
        }
        return call
    }
}
