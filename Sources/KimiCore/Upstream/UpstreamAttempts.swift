/// The retry lifecycle of one upstream call as a value type:
/// each failed attempt is classified, and the machine says whether another
/// attempt follows and after how long. The caller does the I/O, picks the
/// key (`KeyChoice`) and records what the key taught (`KeyHealth`).
///
/// Retried, only while the client has seen nothing: a connection that
/// failed, no first byte within `upstream.firstByteTimeoutMs`, a 5xx, 429
/// `engine_overloaded_error`, and (on another key) 429
/// `rate_limit_reached_error`, 401 and 403 of an upstream key. Never
/// retried: the client's own errors (400, 404, 413, 422) and anything after
/// bytes reached the client. At most `retries` more attempts, none starting
/// after `deadline`.
public struct UpstreamAttempts: Sendable {
    public enum Failure: Equatable, Sendable {
        case connect
        case firstByteTimeout
        /// The connection broke before the answer was whole (nothing relayed yet).
        case dropped
        case server(status: Int)
        /// 429 `engine_overloaded_error`: Kimi is out of capacity (any key).
        case overloaded(retryAfterMicros: Int64?)
        /// 429 `rate_limit_reached_error`: this key is over its tier.
        case keyRateLimited(retryAfterMicros: Int64?)
        /// 401 / 403: this key is refused.
        case keyRefused(KeyHealth.Reason)
        /// Not worth another attempt (the request itself is at fault, or bytes reached the client).
        case final

        /// The `type` label of `upstream_errors_total`.
        public var metricLabel: String {
            switch self {
            case .connect: "connect"
            case .firstByteTimeout: "first_byte_timeout"
            case .dropped: "dropped"
            case .server: "server_error"
            case .overloaded: "engine_overloaded"
            case .keyRateLimited: "rate_limit_reached"
            case .keyRefused: "key_refused"
            case .final: "rejected"
            }
        }

        /// What the failure says about the key used.
        public var lesson: KeyHealth.Lesson {
            switch self {
            case let .keyRateLimited(wait): .rateLimited(retryAfterMicros: wait ?? 1_000_000)
            case let .keyRefused(reason): .refused(reason)
            default: .inconclusive
            }
        }
    }

    /// An upstream answer that is not 2xx, classified. `type` is the
    /// `error.type` of its body.
    public static func classify(status: Int, type: String, retryAfter: String?) -> Failure {
        let wait = retryAfter.flatMap { Int64($0.trimmingSpaces()) }.map { max(0, min($0, 3600)) * 1_000_000 }
        switch status {
        case 429: return type == "engine_overloaded_error" ? .overloaded(retryAfterMicros: wait) : .keyRateLimited(retryAfterMicros: wait)
        case 401: return .keyRefused(.unauthorized)
        case 403: return .keyRefused(type == "exceeded_current_quota_error" ? .noQuota : .permission)
        case 500...599: return type == "engine_overloaded_error" ? .overloaded(retryAfterMicros: wait) : .server(status: status)
        default: return .final
        }
    }

    /// A transfer that failed below HTTP. A timeout after the answer began
    /// (a slow generation) is not retried: it would pay for it twice.
    public static func classify(_ f: UpstreamErrorMapping.TransportFailure) -> Failure {
        switch f {
        case .connect: .connect
        case .firstByteTimeout: .firstByteTimeout
        case .timeout: .final
        case .other: .dropped
        }
    }

    public let retries: Int
    /// Monotonic ns after which no attempt starts.
    public let deadline: UInt64
    public let baseBackoffMs: Int
    public static let maxBackoffMs = 4_000
    public private(set) var attempts = 0

    public init(retries: Int, deadline: UInt64, baseBackoffMs: Int = 200) {
        self.retries = retries
        self.deadline = deadline
        self.baseBackoffMs = baseBackoffMs
    }

    public mutating func started() { attempts += 1 }

    public enum Next: Equatable, Sendable {
        /// Wait this long, then attempt again (on another key when there is one).
        case retry(afterMs: Int)
        case stop
    }

    /// After a failed attempt: exponential backoff with jitter (half fixed,
    /// half random: attempts of many requests spread out instead of
    /// arriving together), never shorter than the upstream's `Retry-After`
    /// for an overload (it is the account's), and only within `deadline`.
    /// A key that is rate limited or refused needs no wait: the next
    /// attempt takes another key, and when none is left the caller waits
    /// for the soonest one or gives up.
    public func next(after failure: Failure, now: UInt64, random: UInt64) -> Next {
        guard failure != .final, attempts <= retries else { return .stop }
        var waitMs: Int
        switch failure {
        case .keyRateLimited, .keyRefused:
            waitMs = 0
        default:
            let exp = min(Self.maxBackoffMs, baseBackoffMs << min(attempts - 1, 10))
            waitMs = exp / 2 + Int(random % UInt64(max(1, exp / 2 + 1)))
            if case let .overloaded(wait?) = failure { waitMs = max(waitMs, Int(wait / 1000)) }
        }
        guard now &+ UInt64(waitMs) * 1_000_000 < deadline else { return .stop }
        return .retry(afterMs: waitMs)
    }
}
