import Glibc

/// An address range (`127.0.0.0/8`, `::1/128`, or one address) and whether
/// an address string falls in it: `metrics.allowFrom`.
public struct CIDR: Equatable, Sendable {
    let bytes: [UInt8]
    let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let bytes = Self.parse(first) else { return nil }
        let bits = bytes.count * 8
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= bits else { return nil }
            prefix = n
        } else {
            prefix = bits
        }
        self.bytes = bytes
    }

    /// 4 or 16 bytes; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) as its IPv4 form.
    static func parse(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, s, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xFF, b[11] == 0xFF { return Array(b[12...]) }
        return b
    }

    public func contains(_ address: String) -> Bool {
        guard let a = Self.parse(address), a.count == bytes.count else { return false }
        var left = prefix
        for i in 0..<bytes.count where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
            if a[i] & mask != bytes[i] & mask { return false }
            left -= 8
        }
        return true
    }
}
