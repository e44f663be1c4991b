import KimiCore

/// The fleet's words in Redis: the same 64-bit TAT and
/// key-health words as the machine's file table, one Redis key each
/// (`prefix` + the slot key in hex), changed only by the atomic scripts of
/// `FleetScripts` — one `EVALSHA` round trip per check, reserve or settle.
///
/// Every method returns nil when Redis did not answer in time (or is known
/// to be down, `RedisLink`): the caller then decides on the file table, so
/// a request waits at most one timeout for a Redis that just failed and
/// none while it stays down. Connections are pooled (one per thread in
/// use at once); scripts are loaded on each new connection and again on
/// `NOSCRIPT` (a restarted or flushed Redis).
public final class RedisWordStore: @unchecked Sendable {
    public let endpoint: RedisEndpoint
    public let timeoutMs: Int
    public let prefix: String

    private let lock = Lock()
    private var idle: [RedisConnection] = []
    private var link = RedisLink()
    private var shas: [String] = []
    private let stillDownLog = IntervalGate(intervalNanos: 10_000_000_000)
    private var lastFailure = ""

    public init(endpoint: RedisEndpoint, timeoutMs: Int, prefix: String) {
        self.endpoint = endpoint
        self.timeoutMs = timeoutMs
        self.prefix = prefix
    }

    /// Whether the last call reached Redis.
    public var isUp: Bool { lock.withLock { link.isUp } }

    public func key(_ slot: UInt64) -> String {
        var s = prefix
        s += String(slot, radix: 16)
        return s
    }

    // MARK: the operations

    public struct Step: Equatable, Sendable {
        public let admitted: Bool
        /// The word before the call (0: none), and Redis's clock, in µs.
        public let stored: Int64
        public let now: Int64
    }

    /// A GCRA admission (`FleetScripts.step`).
    public func step(slot: UInt64, cost: Int64, window: Int64) -> Step? {
        guard case .array(let a)? = eval(0, slot, [String(cost), String(window)]), a.count == 3,
              let ok = a[0].integer, let stored = a[1].integer, let now = a[2].integer else { return nil }
        return Step(admitted: ok == 1, stored: stored, now: now)
    }

    /// A settlement (`FleetScripts.settle`); false when Redis did not take it.
    public func settle(slot: UInt64, span: Int64, window: Int64) -> Bool {
        eval(1, slot, [String(span), String(window)])?.integer != nil
    }

    /// The word (0 when none). With `maxAgeNanos`, a word this process
    /// read or wrote that recently is answered without a round trip (key
    /// health, read for every key on every attempt: a stale word only
    /// makes a compare-and-set fail and retry on the current one).
    public func load(slot: UInt64, maxAgeNanos: UInt64 = 0) -> Int64? {
        let now = Clock.monotonicNanos()
        if maxAgeNanos > 0, let w = lock.withLock({ recent[slot].flatMap { now &- $0.at < maxAgeNanos ? $0.word : nil } }) { return w }
        guard let w = call({ c throws(RedisFailure) in try c.command(["GET", key(slot)]) })?.integer else { return nil }
        remember(slot, w, at: now)
        return w
    }

    /// Sets the word to `desired` if it is `expected`: (true, desired) or (false, current).
    public func compareExchange(slot: UInt64, expected: Int64, desired: Int64, ttlMillis: Int64) -> (Bool, Int64)? {
        let now = Clock.monotonicNanos()
        guard case .array(let a)? = eval(2, slot, [String(expected), String(desired), String(ttlMillis)]), a.count == 2,
              let ok = a[0].integer, let word = a[1].integer else { return nil }
        remember(slot, word, at: now)
        return (ok == 1, word)
    }

    /// Words read or written lately, for `load(slot:maxAgeNanos:)`; bounded
    /// (key-health words: one per upstream key).
    private var recent: [UInt64: (word: Int64, at: UInt64)] = [:]

    private func remember(_ slot: UInt64, _ word: Int64, at: UInt64) {
        lock.withLock {
            if recent.count >= 1024 { recent.removeAll(keepingCapacity: true) }
            recent[slot] = (word, at)
        }
    }

    // MARK: budgets

    /// The hashes of a key's usage in a day and a month (by the period's start).
    public func usageKeys(fingerprint: String, day: UsagePeriod, month: UsagePeriod) -> [String] {
        [prefix + "usage:" + fingerprint + ":d:" + String(day.from), prefix + "usage:" + fingerprint + ":m:" + String(month.from)]
    }

    /// Adds one request's usage to the fleet's counts of its key.
    public func addUsage(fingerprint: String, at ms: Int64, _ u: UsageCounts) -> Bool {
        let (day, month) = (UsagePeriod.day(containing: ms), UsagePeriod.month(containing: ms))
        let expiry = { (p: UsagePeriod) in String(p.to + 86_400_000) }
        return eval(3, keys: usageKeys(fingerprint: fingerprint, day: day, month: month),
                    [String(u.requests), String(u.promptTokens), String(u.completionTokens), String(u.costMicros), expiry(day), expiry(month)])?.integer != nil
    }

    /// What the whole fleet counted for a key today and this month.
    public func usage(fingerprint: String, now ms: Int64) -> UsageBook.Spent? {
        let keys = usageKeys(fingerprint: fingerprint, day: .day(containing: ms), month: .month(containing: ms))
        guard case .array(let a)? = eval(4, keys: keys, []), a.count == 8 else { return nil }
        let n = a.map { Int($0.integer ?? 0) }
        let counts = { (i: Int) in
            UsageCounts(requests: n[i], promptTokens: n[i + 1], completionTokens: n[i + 2], totalTokens: n[i + 1].addingSaturated(n[i + 2]),
                        costMicros: n[i + 3])
        }
        return UsageBook.Spent(day: counts(0), month: counts(4))
    }

    // MARK: client keys

    /// The fleet's keys: the entries, their versions, the generation.
    public var keyStoreKeys: [String] { [prefix + "keys", prefix + "keys:v", prefix + "keys:gen"] }

    /// The generation of the fleet's keys (0: none yet); nil when Redis did not answer.
    public func keysGeneration() -> Int64? {
        call { c throws(RedisFailure) in try c.command(["GET", keyStoreKeys[2]]) }?.integer
    }

    /// Every key entry the fleet holds, as `KeyStore.Entry.fleetJSON` texts (id → JSON).
    public func keyEntries() -> [String: String]? {
        guard case .array(let a)? = call({ c throws(RedisFailure) in try c.command(["HGETALL", keyStoreKeys[0]]) }) else { return nil }
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < a.count {
            if case .string(let id) = a[i], case .string(let json) = a[i + 1] { out[id] = json }
            i += 2
        }
        return out
    }

    /// Publishes entries (id, version, JSON) where they win (`FleetScripts.keyPut`); the generation after.
    public func putKeyEntries(_ entries: [(id: String, version: Int64, json: String)]) -> Int64? {
        guard !entries.isEmpty else { return keysGeneration() }
        return eval(5, keys: keyStoreKeys, entries.flatMap { [$0.id, String($0.version), $0.json] })?.integer
    }

    // MARK: connections, scripts and the link

    private func eval(_ script: Int, _ slot: UInt64, _ args: [String]) -> RedisConnection.Reply? {
        eval(script, keys: [key(slot)], args)
    }

    private func eval(_ script: Int, keys: [String], _ args: [String]) -> RedisConnection.Reply? {
        call { c throws(RedisFailure) in
            let head = [String(keys.count)] + keys
            var reply = try c.command(["EVALSHA", scriptSHA(script, c)] + head + args)
            if case .error(let e) = reply, e.hasPrefix("NOSCRIPT") {
                let sha = try load(c)[script]
                reply = try c.command(["EVALSHA", sha] + head + args)
            }
            if case .error(let e) = reply { throw Self.refusal(e) }
            return reply
        }
    }

    private func scriptSHA(_ i: Int, _ c: RedisConnection) throws(RedisFailure) -> String {
        if let s = lock.withLock({ shas.count == FleetScripts.all.count ? shas[i] : nil }) { return s }
        return try load(c)[i]
    }

    @discardableResult
    private func load(_ c: RedisConnection) throws(RedisFailure) -> [String] {
        var loaded: [String] = []
        for s in FleetScripts.all {
            switch try c.command(["SCRIPT", "LOAD", s]) {
            case .string(let sha): loaded.append(sha)
            case .error(let e): throw Self.refusal(e)
            default: throw RedisFailure("SCRIPT LOAD answered no SHA")
            }
        }
        lock.withLock { shas = loaded }
        return loaded
    }

    /// An error reply, as the log line says it.
    static func refusal(_ e: String) -> RedisFailure {
        RedisFailure(e.hasPrefix("NOAUTH") ? "Redis requires a password (\(e)): set REDIS_PASSWORD" : "Redis refused: \(e)")
    }

    /// Runs `body` on a pooled connection when the link admits a call;
    /// a failure discards the connection and takes the link down.
    private func call(_ body: (RedisConnection) throws(RedisFailure) -> RedisConnection.Reply) -> RedisConnection.Reply? {
        let start = Clock.monotonicNanos()
        let pooled: RedisConnection?? = lock.withLock {
            guard link.admit(now: start) else { return .none }
            return .some(idle.popLast())
        }
        guard let pooled else {
            if stillDownLog.tryEnter() {
                Log.error("redis \(endpoint) still unreachable (\(lock.withLock { lastFailure })): limits are this machine's own (the file table)")
            }
            return nil
        }
        do throws(RedisFailure) {
            var c: RedisConnection
            if let pooled { c = pooled } else { c = try RedisConnection(endpoint: endpoint, timeoutMs: timeoutMs) }
            let reply: RedisConnection.Reply
            do throws(RedisFailure) {
                reply = try body(c)
            } catch where pooled != nil && error.io && !error.timedOut {
                // A pooled connection the server closed (a Redis restarted
                // while this process was idle): once more on a fresh one,
                // so a restart costs no request its shared limit. A
                // timeout is never repeated (no call waits twice), nor an
                // error Redis answered.
                lock.withLock { idle.removeAll() }
                c = try RedisConnection(endpoint: endpoint, timeoutMs: timeoutMs)
                reply = try body(c)
            }
            let event = lock.withLock {
                if idle.count < 64 { idle.append(c) }
                return link.succeeded(now: Clock.monotonicNanos())
            }
            if case .recovered(let nanos)? = event {
                Log.info("redis \(endpoint) is back after \(nanos / 1_000_000) ms: limits and key health are shared across the fleet again")
            }
            return reply
        } catch {
            let event = lock.withLock {
                lastFailure = error.description
                // The other pooled connections are likely as dead: start afresh.
                idle.removeAll()
                return link.failed(now: Clock.monotonicNanos())
            }
            if event == .wentDown {
                Log.error("redis \(endpoint) unreachable (\(error.description)): limits are this machine's own (the file table) until it is back; retrying within 1 s")
            }
            return nil
        }
    }
}
