import KimiCore
import Upstream

/// A non-streaming upstream call: the whole body, bounded.
final class BufferedCall: UpstreamReceiver {
    static let maxBytes = 32 << 20
    private(set) var status = 0
    private(set) var headers: [String: String] = [:]
    private(set) var body: [UInt8] = []
    private var tooLarge = false

    func upstreamHead(status: Int, headers: [String: String]) -> Bool {
        self.status = status
        self.headers = headers
        return true
    }

    func upstreamData(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard body.count + bytes.count <= Self.maxBytes else { tooLarge = true; return false }
        body.append(contentsOf: bytes)
        return true
    }

    func upstreamTick() -> Bool { true }

    /// Runs the call; a transport failure or a non-2xx answer becomes the
    /// mapped `GatewayError`.
    static func run(_ req: UpstreamRequest, apiKey: String, ctx: RequestContext? = nil) throws(GatewayError) -> BufferedCall {
        let call = BufferedCall()
        let client = UpstreamClient.forCurrentThread()
        defer { ctx?.noteUpstreamVersion(client) }
        switch client.perform(req, receiver: call) {
        case .completed: break
        case .abortedByReceiver:
            throw .upstreamFailed(call.tooLarge ? "Upstream response too large" : "Upstream transfer aborted")
        case let .failed(f): throw UpstreamErrorMapping.map(f)
        }
        guard (200..<300).contains(call.status) else {
            throw UpstreamErrorMapping.map(status: call.status, body: call.body, retryAfter: call.headers["retry-after"], apiKey: apiKey)
        }
        return call
    }
}

extension GatewayConfig {
    func upstreamRequest(_ method: String, _ path: String, body: [UInt8] = [], stream: Bool = false, idleMs: Int? = nil) -> UpstreamRequest {
        var base = upstream.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var r = UpstreamRequest(method: method, url: base + path, bearer: upstream.apiKey, body: body,
                                accept: stream ? "text/event-stream" : "application/json",
                                connectTimeoutMs: upstream.connectTimeoutMs, idleTimeoutMs: idleMs ?? upstream.idleTimeoutMs)
        r.caFile = upstream.caFile
        return r
    }
}

extension RequestContext {
    /// `upstream=h2` (or h1) in the access log line.
    func noteUpstreamVersion(_ client: UpstreamClient) {
        let v = client.lastHTTPVersion
        if v > 0 { logNotes.append("upstream=h\(v)") }
    }
}
