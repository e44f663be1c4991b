/// Values that came from a request (an Origin, a model name, a path) must
/// never carry CR/LF or other control characters into a response header or a
/// log line (RFC 9110 §5.5: field values are visible ASCII, SP and HTAB).
public enum HeaderSafety {
    /// True when `s` is a legal, printable header value.
    public static func isSafe(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { isSafe($0) }
    }

    /// The same over bytes, eight a step while all are visible ASCII or
    /// SP (byte by byte this was ~15 instructions a byte, 3,800 a relayed
    /// completion's response head: callgrind).
    public static func isSafe(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        if let base = b.baseAddress {
            let raw = UnsafeRawPointer(base)
            let ones: UInt64 = 0x0101_0101_0101_0101
            while i + 8 <= b.count {
                let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                // High bit set in a byte of this: the byte is below 0x20, or
                // 0x7F and up (may flag bytes after a true one; the loop
                // below decides the word then, a tab being allowed).
                if (((x &- ones &* 0x20) & ~x) | x | (x &+ ones)) & (ones &* 0x80) != 0 { break }
                i += 8
            }
        }
        while i < b.count {
            let c = b[i]
            if c != 0x09 && (c < 0x20 || c >= 0x7F) { return false }
            i += 1
        }
        return true
    }

    /// `s` with every byte outside visible ASCII replaced by `?`, cut to `max`.
    public static func printable(_ s: String, max: Int = 200) -> String {
        if s.utf8.count <= max, s.utf8.withContiguousStorageIfAvailable({ b in !b.contains { $0 < 0x20 || $0 >= 0x7F } }) == true {
            return s
        }
        var out = ""
        out.reserveCapacity(min(s.utf8.count, max))
        for b in s.utf8.prefix(max) {
            out.unicodeScalars.append(b >= 0x20 && b < 0x7F ? Unicode.Scalar(b) : "?")
        }
        if s.utf8.count > max { out += "…" }
        return out
    }
}
