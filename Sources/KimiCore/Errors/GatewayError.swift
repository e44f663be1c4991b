/// The one error type of the gateway. Every failure a client can see is one
/// of these, and `GatewayError+Render.swift` turns it into a status and body
/// in exactly one function per API face.
public struct GatewayError: Error, Equatable, Sendable, CustomStringConvertible {
    enum Code: String, Sendable {
        case badRequest, unauthorized, forbidden, notFound, methodNotAllowed, payloadTooLarge
        case rateLimited, upstreamBadRequest, upstreamAuth, upstreamRateLimited, upstreamFailed
        case upstreamTimeout, upstreamUnavailable, internalError, overloaded, storageUnavailable
        case quotaExceeded, fileQuota, conflict
    }

    let code: Code
    public let message: String
    /// OpenAI/Moonshot error type for the `/v1` body (kept from upstream errors).
    public let type: String
    public var extraHeaders: [(String, String)] = []

    public static func == (a: GatewayError, b: GatewayError) -> Bool {
        a.code == b.code && a.message == b.message && a.type == b.type
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public var status: Int {
        switch code {
        case .badRequest, .upstreamBadRequest: return 400
        case .unauthorized: return 401
        case .forbidden, .fileQuota: return 403
        case .notFound: return 404
        case .methodNotAllowed: return 405
        case .conflict: return 409
        case .payloadTooLarge: return 413
        case .rateLimited, .upstreamRateLimited, .quotaExceeded: return 429
        case .internalError: return 500
        case .upstreamAuth, .upstreamFailed, .upstreamUnavailable: return 502
        case .upstreamTimeout: return 504
        case .overloaded, .storageUnavailable: return 503
        }
    }

    /// The `code` member of an OpenAI error body.
    public var openAICode: String? {
        switch code {
        case .unauthorized: return "invalid_api_key"
        case .notFound: return "not_found"
        case .methodNotAllowed: return "method_not_allowed"
        case .payloadTooLarge: return "payload_too_large"
        case .rateLimited: return "rate_limit_exceeded"
        case .quotaExceeded: return "insufficient_quota"
        case .fileQuota: return "file_quota_exceeded"
        default: return nil
        }
    }

    public static func badRequest(_ m: String) -> GatewayError {
        GatewayError(code: .badRequest, message: m, type: "invalid_request_error")
    }
    public static func unauthorized(_ m: String = "Invalid or missing API key") -> GatewayError {
        GatewayError(code: .unauthorized, message: m, type: "invalid_authentication_error")
    }
    public static func forbidden(_ m: String) -> GatewayError {
        GatewayError(code: .forbidden, message: m, type: "permission_denied_error")
    }
    public static func notFound(_ path: String) -> GatewayError {
        GatewayError(code: .notFound, message: "Route not found: \(HeaderSafety.printable(path, max: 200))",
                     type: "invalid_request_error")
    }
    public static func methodNotAllowed(_ method: String, allow: [String]) -> GatewayError {
        var e = GatewayError(code: .methodNotAllowed,
                             message: "Method \(HeaderSafety.printable(method, max: 20)) not allowed",
                             type: "invalid_request_error")
        e.extraHeaders = [("Allow", allow.joined(separator: ", "))]
        return e
    }
    public static func payloadTooLarge(limit: Int) -> GatewayError {
        GatewayError(code: .payloadTooLarge, message: "Request body exceeds the limit of \(limit) bytes",
                     type: "invalid_request_error")
    }
    public static func rateLimited(retryAfter: Int) -> GatewayError {
        var e = GatewayError(code: .rateLimited,
                             message: "Too many requests, please try again in \(retryAfter) seconds",
                             type: "rate_limit_reached_error")
        e.extraHeaders = [("Retry-After", String(retryAfter))]
        return e
    }
    /// The token limit: this request's reservation does not fit yet.
    public static func tokensLimited(retryAfter: Int, tokens: Int, limit: Int) -> GatewayError {
        var e = GatewayError(code: .rateLimited,
                             message: "Token limit reached: this request reserves \(tokens) tokens (prompt estimate + max_tokens) of \(limit) per minute; try again in \(retryAfter) seconds",
                             type: "rate_limit_reached_error")
        e.extraHeaders = [("Retry-After", String(retryAfter))]
        return e
    }
    /// A reservation larger than the whole limit can never fit: waiting
    /// does not help (`x-should-retry: false` stops the openai SDK's retries).
    public static func tooLargeForTokenLimit(tokens: Int, limit: Int) -> GatewayError {
        var e = GatewayError(code: .rateLimited,
                             message: "Request too large: it reserves \(tokens) tokens (prompt estimate + max_tokens), more than the limit of \(limit) per minute; lower max_tokens or shorten the prompt",
                             type: "rate_limit_reached_error")
        e.extraHeaders = [("x-should-retry", "false")]
        return e
    }
    /// The key's token budget for the day or month is spent (OpenAI's
    /// `insufficient_quota`: the SDK raises `RateLimitError` with that code).
    public static func quotaExceeded(_ m: String, retryAfter: Int) -> GatewayError {
        var e = GatewayError(code: .quotaExceeded, message: m, type: "insufficient_quota")
        e.extraHeaders = [("Retry-After", String(retryAfter)), ("x-should-retry", "false")]
        return e
    }
    public static func upstreamBadRequest(_ m: String, type: String) -> GatewayError {
        GatewayError(code: .upstreamBadRequest, message: m, type: type.isEmpty ? "invalid_request_error" : type)
    }
    public static func upstreamAuth(type: String) -> GatewayError {
        GatewayError(code: .upstreamAuth, message: "upstream authentication failed",
                     type: type.isEmpty ? "upstream_authentication_error" : type)
    }
    public static func upstreamRateLimited(_ m: String, type: String, retryAfter: Int) -> GatewayError {
        var e = GatewayError(code: .upstreamRateLimited, message: m,
                             type: type.isEmpty ? "rate_limit_reached_error" : type)
        e.extraHeaders = [("Retry-After", String(retryAfter))]
        return e
    }
    public static func upstreamFailed(_ m: String, type: String = "server_error") -> GatewayError {
        GatewayError(code: .upstreamFailed, message: m, type: type)
    }
    public static func upstreamUnavailable(_ m: String) -> GatewayError {
        GatewayError(code: .upstreamUnavailable, message: m, type: "upstream_unavailable")
    }
    public static func upstreamTimeout(_ m: String = "upstream timed out") -> GatewayError {
        GatewayError(code: .upstreamTimeout, message: m, type: "timeout_error")
    }
    /// Every worker thread of this process is busy (the reserve thread answers).
    /// Every upstream key is cooling down or refused: nothing was sent.
    public static func noUpstreamKey(retryAfter: Int) -> GatewayError {
        var e = GatewayError(code: .overloaded, message: "Every upstream key is cooling down or refused; retry in \(retryAfter) second\(retryAfter == 1 ? "" : "s")",
                             type: "engine_overloaded_error")
        e.extraHeaders = [("Retry-After", String(retryAfter))]
        return e
    }
    public static func overloaded(retryAfter: Int) -> GatewayError {
        var e = GatewayError(code: .overloaded, message: "The gateway is at capacity; retry in \(retryAfter) second\(retryAfter == 1 ? "" : "s")",
                             type: "engine_overloaded_error")
        e.extraHeaders = [("Retry-After", String(retryAfter))]
        return e
    }
    /// The process holds as much as `server.maxBufferedBytes` allows (answers,
    /// documents): a 503 the client may retry.
    public static func buffersFull(_ what: String, retryAfter: Int) -> GatewayError {
        var e = GatewayError(code: .overloaded, message: "The gateway is holding too much at once to take \(what) (server.maxBufferedBytes); retry in \(retryAfter) second\(retryAfter == 1 ? "" : "s")",
                             type: "engine_overloaded_error")
        e.extraHeaders = [("Retry-After", String(retryAfter))]
        return e
    }
    /// A file this client may not see, or that does not exist: one answer
    /// for both, so a file id never confirms another client's file.
    public static func fileNotFound(_ id: String) -> GatewayError {
        GatewayError(code: .notFound, message: "No such file: \(HeaderSafety.printable(id, max: 128))", type: "resource_not_found_error")
    }
    /// The key keeps as many files (or bytes) upstream as
    /// `limits.maxFilesPerKey` (`maxFileBytesPerKey`) allow: 403, not 429,
    /// since waiting does not help (SDKs retry a 429) — deleting does.
    public static func fileQuotaExceeded(_ m: String) -> GatewayError {
        GatewayError(code: .fileQuota, message: m, type: "permission_denied_error")
    }
    /// The key has `maxConcurrent` requests in flight: 429, retry in a second.
    public static func concurrencyLimited(cap: Int) -> GatewayError {
        var e = GatewayError(code: .rateLimited, message: "This key has \(cap) request\(cap == 1 ? "" : "s") in flight, its limit (maxConcurrent); retry when one ends",
                             type: "rate_limit_reached_error")
        e.extraHeaders = [("Retry-After", "1")]
        return e
    }
    /// No key of that id (the admin key API).
    public static func keyNotFound(_ id: String) -> GatewayError {
        GatewayError(code: .notFound, message: "No such key: \(HeaderSafety.printable(id, max: 80))", type: "not_found_error")
    }
    /// The request conflicts with how the resource is held (a config-file key changed through the API).
    public static func conflict(_ m: String) -> GatewayError {
        GatewayError(code: .conflict, message: m, type: "invalid_request_error")
    }
    /// The gateway's database cannot be used: file routes refuse rather
    /// than serve without tenant isolation.
    public static func storageUnavailable(_ m: String) -> GatewayError {
        GatewayError(code: .storageUnavailable, message: m, type: "server_error")
    }
    public static func internalError(_ m: String = "Internal server error") -> GatewayError {
        GatewayError(code: .internalError, message: m, type: "server_error")
    }
}
