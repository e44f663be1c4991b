import CCrypto

/// SHA-256 (FIPS 180-4) from OpenSSL's libcrypto, for API-key hashes and
/// fingerprints. A pure function over bytes; the NIST vectors test it.
public enum SHA256 {
    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        message.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in
                _ = CCrypto.SHA256(m.baseAddress, m.count, o.baseAddress)
            }
        }
        return out
    }

    public static func hex(_ s: String) -> String { hexString(digest(Array(s.utf8))) }

    /// SHA-256 over bytes that arrive in pieces (an upload spooled to disk).
    public final class Hasher {
        private let ctx: OpaquePointer

        public init() {
            ctx = EVP_MD_CTX_new()
            EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
        }

        deinit { EVP_MD_CTX_free(ctx) }

        public func update(_ bytes: UnsafeRawBufferPointer) {
            if let base = bytes.baseAddress, bytes.count > 0 { EVP_DigestUpdate(ctx, base, bytes.count) }
        }

        public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

        /// The digest as lowercase hex; the hasher is spent afterwards.
        public func finalHex() -> String {
            var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
            var n: UInt32 = 0
            EVP_DigestFinal_ex(ctx, &out, &n)
            return SHA256.hexString(out)
        }
    }

    public static func hexString(_ bytes: [UInt8]) -> String {
        let d = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(d[Int(b >> 4)]); out.append(d[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// A short, non-reversible name for a secret, safe for logs: `sha256:1a2b3c4d`.
    public static func fingerprint(_ secret: String) -> String { "sha256:" + hex(secret).prefix(8) }

    /// Equality of two byte strings in time independent of where they
    /// differ (OpenSSL's `CRYPTO_memcmp`). Lengths are not secret here: both
    /// sides are digests.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}

/// Bytes from OpenSSL's CSPRNG (seeded by the kernel's getrandom): the
/// secrets of keys created at run time.
public enum SecureRandom {
    public static func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(n)) }
        precondition(ok == 1, "the CSPRNG failed")
        return out
    }
}
