/// How an upstream failure reaches the client: its own fault (400) is passed
/// on with the upstream message; the server's key being refused (401/403) is
/// a 502 (the client's request was fine); 429 stays 429 with Retry-After;
/// 5xx and connection failures are 502; timeouts are 504. The upstream error
/// `type` is kept for the `/v1` body. The upstream key never appears.
public enum UpstreamErrorMapping {
    public static func map(status: Int, body: [UInt8], retryAfter: String?, apiKey: String) -> GatewayError {
        let parsed = try? JSON.parse(body)
        var message = parsed?["error"]?["message"]?.stringValue ?? parsed?["message"]?.stringValue ?? ""
        let type = parsed?["error"]?["type"]?.stringValue ?? ""
        if !apiKey.isEmpty { message = redact(message, secret: apiKey) }
        message = HeaderSafety.printable(message, max: 500)
        switch status {
        case 400, 404, 413, 422:
            return .upstreamBadRequest(message.isEmpty ? "The upstream rejected the request (\(status))" : message, type: type)
        case 401, 403:
            return .upstreamAuth(type: type)
        case 429:
            let seconds = retryAfter.flatMap { Int($0.trimmingSpaces()) }.map { max(1, $0) } ?? 1
            return .upstreamRateLimited(message.isEmpty ? "The upstream is rate limiting requests" : message, type: type, retryAfter: seconds)
        default:
            return .upstreamFailed("Upstream error (\(status))\(message.isEmpty ? "" : ": \(message)")", type: type.isEmpty ? "server_error" : type)
        }
    }

    public enum TransportFailure: Sendable, Equatable {
        case connect(String)
        case timeout(String)
        case other(String)
    }

    public static func map(_ f: TransportFailure) -> GatewayError {
        switch f {
        case let .connect(d): return .upstreamUnavailable("Cannot reach the upstream: \(HeaderSafety.printable(d, max: 200))")
        case let .timeout(d): return .upstreamTimeout("The upstream timed out: \(HeaderSafety.printable(d, max: 200))")
        case let .other(d): return .upstreamFailed("Upstream transfer failed: \(HeaderSafety.printable(d, max: 200))")
        }
    }

    static func redact(_ s: String, secret: String) -> String {
        guard secret.count >= 4 else { return s }
        var out = s
        while let r = out.firstRange(of: secret) { out.replaceSubrange(r, with: "[redacted]") }
        return out
    }
}
