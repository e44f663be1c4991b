import KimiCore
import Upstream

extension GatewayConfig {
    func upstreamRequest(_ method: String, _ path: String, body: [UInt8] = [], stream: Bool = false, idleMs: Int? = nil,
                         key: UpstreamKey) -> UpstreamRequest
    {
        var base = key.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var r = UpstreamRequest(method: method, url: base + path, bearer: key.key, body: body,
                                accept: stream ? "text/event-stream" : "application/json",
                                connectTimeoutMs: upstream.connectTimeoutMs, idleTimeoutMs: idleMs ?? upstream.idleTimeoutMs)
        r.totalTimeoutMs = upstream.totalTimeoutMs
        r.caFile = upstream.caFile
        r.firstByteTimeoutMs = upstream.firstByteTimeoutMs
        return r
    }
}

extension RequestContext {
    /// The upstream request for this client request: this request's config
    /// snapshot, and its id passed on as `X-Request-Id`.
    func upstreamRequest(_ method: String, _ path: String, body: [UInt8] = [], stream: Bool = false, key: UpstreamKey) -> UpstreamRequest {
        var r = config.upstreamRequest(method, path, body: body, stream: stream, key: key)
        r.requestID = request.requestID
        if trace != nil {
            trace!.noteUpstream(method: method, url: r.url)
            r.traceparent = trace!.upstreamTraceparent
        }
        return r
    }
}
