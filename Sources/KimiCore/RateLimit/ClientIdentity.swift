/// Who a request counts against: the API key when authenticated, else the
/// peer address. `X-Forwarded-For` is believed only when the peer is a
/// configured trusted proxy, and then only the right-most address that is
/// not itself a trusted proxy: everything left of it is the client's to
/// forge, so rotating it buys no fresh quota.
public enum ClientIdentity {
    public static func of(remoteAddr: String, forwardedFor: String?, trustedProxies: [String], apiKeyHash: String?) -> String {
        if let apiKeyHash { return "key:" + apiKeyHash }
        return "ip:" + address(remoteAddr: remoteAddr, forwardedFor: forwardedFor, trustedProxies: trustedProxies)
    }

    public static func address(remoteAddr: String, forwardedFor: String?, trustedProxies: [String]) -> String {
        let peer = normalise(remoteAddr)
        guard let xff = forwardedFor, !trustedProxies.isEmpty, trustedProxies.contains(peer) else { return peer }
        var current = peer
        for hop in xff.split(separator: ",").reversed() {
            let a = normalise(String(hop))
            guard isPlausibleAddress(a) else { return current }
            current = a
            if !trustedProxies.contains(a) { return a }
        }
        return current
    }

    static func normalise(_ s: String) -> String {
        // Fast path: a plain IPv4 address as web servers send REMOTE_ADDR.
        if s.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }) { return s }
        var t = s.trimmingSpaces()
        if t.hasPrefix("::ffff:"), t.contains(".") { t = String(t.dropFirst(7)) }
        return t.lowercased()
    }

    static func isPlausibleAddress(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 45 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2E || $0 == 0x3A }
    }
}
