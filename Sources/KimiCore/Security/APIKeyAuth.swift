/// API keys, accepted as `x-api-key: K` or `Authorization: Bearer K`.
/// The presented key is hashed (SHA-256, fixed length) and compared with
/// every configured hash in constant time, so neither the key's length nor
/// where it differs shows in the timing, and the config holds no usable secret.
public enum APIKeyAuth {
    public enum Outcome: Equatable {
        case none
        case valid(GatewayConfig.APIKey)
        case invalid
    }

    /// The key as presented, nil when none was sent. An empty value or a
    /// bare `Bearer ` is a present-but-empty key.
    public static func presented(headers: [String: String]) -> String? {
        if let k = headers["x-api-key"] { return k.trimmingSpaces() }
        if let auth = headers["authorization"] {
            let t = auth.trimmingSpaces()
            if t.lowercased() == "bearer" { return "" }
            if t.lowercased().hasPrefix("bearer ") { return String(t.dropFirst(7)).trimmingSpaces() }
            return "" // another scheme: not a key we accept
        }
        return nil
    }

    public static func check(headers: [String: String], keys: [GatewayConfig.APIKey]) -> Outcome {
        guard let key = presented(headers: headers) else { return .none }
        guard !key.isEmpty, key.utf8.count <= 512 else { return .invalid }
        let digest = SHA256.digest(Array(key.utf8))
        var match: GatewayConfig.APIKey?
        for k in keys {
            // Every configured key is compared: no early exit.
            if SHA256.constantTimeEquals(digest, hexBytes(k.sha256)) && match == nil { match = k }
        }
        return match.map { .valid($0) } ?? .invalid
    }

    static func hexBytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var hi: UInt8?
        for c in hex.utf8 {
            let v: UInt8 = c <= 0x39 ? c &- 0x30 : (c | 0x20) &- 0x61 &+ 10
            if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
        }
        return out
    }
}
