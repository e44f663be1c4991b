/// The process's view of its Redis as a value-type state
/// machine: may a call try Redis now, and what a result teaches.
///
///     up ──a call fails or times out──▶ down(retry at now + backoff)
///      ▲                                   │ time up: ONE call probes
///      │                                   ▼
///      └──────────── it succeeds ◀──── probing ──fails──▶ down(backoff × 2, at most maxBackoff)
///
/// While down every call is decided on the machine's file table at once (no
/// request waits on a Redis that just failed); one probe at a time finds out
/// whether it is back, so the fleet shares limits again within
/// `maxBackoffNanos` + one call of Redis returning.
public struct RedisLink: Equatable, Sendable {
    public enum Mode: Equatable, Sendable {
        case up
        case down(retryAt: UInt64)
        case probing(since: UInt64)
    }

    /// What the caller should say (once per change; the wrapper repeats
    /// "still down" every 10 s on its own).
    public enum Event: Equatable, Sendable {
        case wentDown
        case recovered(downForNanos: UInt64)
    }

    public private(set) var mode: Mode = .up
    public private(set) var backoffNanos: UInt64
    /// When it went down (for the recovery line).
    public private(set) var downSince: UInt64 = 0
    public let minBackoffNanos: UInt64
    public let maxBackoffNanos: UInt64
    /// A probe that never reports (its thread hangs past every timeout)
    /// lets another call probe after this long.
    public let probeWindowNanos: UInt64

    public init(minBackoffNanos: UInt64 = 100_000_000, maxBackoffNanos: UInt64 = 1_000_000_000, probeWindowNanos: UInt64 = 2_000_000_000) {
        self.minBackoffNanos = minBackoffNanos
        self.maxBackoffNanos = maxBackoffNanos
        self.probeWindowNanos = probeWindowNanos
        backoffNanos = minBackoffNanos
    }

    public var isUp: Bool { mode == .up }

    /// Whether this call may use Redis; the first call after the backoff
    /// becomes the probe and the others keep to the file until it reports.
    public mutating func admit(now: UInt64) -> Bool {
        switch mode {
        case .up: return true
        case .down(let retryAt):
            guard now >= retryAt else { return false }
            mode = .probing(since: now)
            return true
        case .probing(let since):
            guard now &- since >= probeWindowNanos else { return false }
            mode = .probing(since: now)
            return true
        }
    }

    public mutating func succeeded(now: UInt64) -> Event? {
        guard mode != .up else { return nil }
        mode = .up
        backoffNanos = minBackoffNanos
        return .recovered(downForNanos: now &- downSince)
    }

    public mutating func failed(now: UInt64) -> Event? {
        switch mode {
        case .up:
            downSince = now
            backoffNanos = minBackoffNanos
            mode = .down(retryAt: now + backoffNanos)
            return .wentDown
        case .probing:
            backoffNanos = min(backoffNanos * 2, maxBackoffNanos)
            mode = .down(retryAt: now + backoffNanos)
            return nil
        case .down:
            // Another thread's call that was already under way: no new backoff.
            return nil
        }
    }
}
