/// How an upstream failure reaches the client: its own fault (400) is passed
/// on with the upstream message; the server's key being refused (401/403) is
/// a 502 (the client's request was fine); 429 stays 429 with Retry-After;
/// 5xx and connection failures are 502; timeouts are 504. The upstream error
/// `type` is kept for the `/v1` body when it is a known Kimi type. The
/// message passes through `Redaction.scrub`: the upstream key never appears.
public enum UpstreamErrorMapping {
    /// The `error.type` of an upstream error body ("" when it has none).
    public static func errorType(_ body: [UInt8]) -> String {
        (try? JSON.parse(body))?["error"]?["type"]?.stringValue ?? ""
    }

    public static func map(status: Int, body: [UInt8], retryAfter: String?, apiKey: String) -> GatewayError {
        let parsed = try? JSON.parse(body)
        let raw = parsed?["error"]?["message"]?.stringValue ?? parsed?["message"]?.stringValue ?? ""
        let message = cleanMessage(raw, apiKey: apiKey)
        // 529: Kimi's Anthropic face out of capacity (its chat face says 429 engine_overloaded_error).
        let type = status == 529 ? "engine_overloaded_error" : Redaction.kimiType(parsed?["error"]?["type"]?.stringValue ?? "", status: status)
        switch status {
        case 400, 404, 413, 422:
            return .upstreamBadRequest(message.isEmpty ? "The upstream rejected the request (\(status))" : message, type: type)
        case 401, 403:
            return .upstreamAuth(type: type)
        case 429:
            let seconds = retryAfter.flatMap { Int($0.trimmingSpaces()) }.map { max(1, $0) } ?? 1
            return .upstreamRateLimited(message.isEmpty ? "The upstream is rate limiting requests" : message, type: type, retryAfter: seconds)
        default:
            return .upstreamFailed("Upstream error (\(status))\(message.isEmpty ? "" : ": \(message)")", type: type)
        }
    }

    public enum TransportFailure: Sendable, Equatable {
        case connect(String)
        case timeout(String)
        /// Nothing of the answer came in time (retryable: the client saw nothing).
        case firstByteTimeout(String)
        case other(String)
    }

    public static func map(_ f: TransportFailure) -> GatewayError {
        switch f {
        case let .connect(d): return .upstreamUnavailable("Cannot reach the upstream: \(HeaderSafety.printable(d, max: 200))")
        case let .timeout(d), let .firstByteTimeout(d): return .upstreamTimeout("The upstream timed out: \(HeaderSafety.printable(d, max: 200))")
        case let .other(d): return .upstreamFailed("Upstream transfer failed: \(HeaderSafety.printable(d, max: 200))")
        }
    }

    /// Upstream text as a client and the log may see it: credentials
    /// scrubbed, control characters gone, at most 500 characters.
    public static func cleanMessage(_ raw: String, apiKey: String) -> String {
        HeaderSafety.printable(Redaction.scrub(String(raw.prefix(2000)), secrets: apiKey.isEmpty ? [] : [apiKey]), max: 500)
    }

    /// An `{"error":{...}}` event inside an upstream stream, made safe to
    /// relay: message scrubbed, type a known Kimi type. Nil when `chunk`
    /// carries no error.
    public static func streamError(_ chunk: JSON, apiKey: String) -> (message: String, type: String)? {
        guard let e = chunk["error"], !e.isNull else { return nil }
        let raw = e["message"]?.stringValue ?? e.stringValue ?? "The upstream reported an error"
        let message = cleanMessage(raw, apiKey: apiKey)
        return (message.isEmpty ? "The upstream reported an error" : message, Redaction.kimiType(e["type"]?.stringValue ?? "", status: 500))
    }
}
