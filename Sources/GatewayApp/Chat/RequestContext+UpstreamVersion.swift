import Upstream

extension RequestContext {
    /// `upstream=h2` (or h1) in the access log line.
    func noteUpstreamVersion(_ client: UpstreamTransport) {
        let v = client.lastHTTPVersion
        if v > 0 { logNotes.append("upstream=h\(v)") }
    }
}
