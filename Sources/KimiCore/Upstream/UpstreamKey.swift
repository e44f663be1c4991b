/// One Kimi API key of the pool: `upstream.keys[]`, the
/// comma-separated `KIMI_API_KEY`, or the one-key `upstream.apiKey`. Logs,
/// `/health` and `check-config` name it by `name` and `fingerprint`, never
/// by the key.
public struct UpstreamKey: Sendable, Equatable {
    public let name: String
    public let key: String
    /// Share of requests among the healthy keys (1...1000).
    public let weight: Int
    /// Where this key is sent (its account's endpoint); `upstream.baseURL` when empty.
    public let baseURL: String
    /// When set, `key` is read from this environment variable at load.
    public let keyEnv: String?
    public let fingerprint: String
    /// This key's word in the shared table (`KeyHealth`); a key at two
    /// endpoints has two.
    public let healthSlot: UInt64
    /// Beside it: when the key last answered overloaded, 5xx or timed out
    /// (µs; `KeyChoice` weighs a key in trouble less).
    public var troubleSlot: UInt64 { healthSlot &* 0x9E37_79B9_7F4A_7C15 | 1 }

    public init(name: String, key: String, weight: Int = 1, baseURL: String = "", keyEnv: String? = nil) {
        self.name = name
        self.key = key
        self.weight = weight
        self.baseURL = baseURL
        self.keyEnv = keyEnv
        fingerprint = SHA256.fingerprint(key)
        healthSlot = RateLimiter.key(client: fingerprint + "@" + baseURL, policy: "upstream-key-health")
    }

    public func with(key: String? = nil, baseURL: String? = nil, name: String? = nil) -> UpstreamKey {
        UpstreamKey(name: name ?? self.name, key: key ?? self.key, weight: weight, baseURL: baseURL ?? self.baseURL, keyEnv: keyEnv)
    }
}
