/// Values that came from a request (an Origin, a model name, a path) must
/// never carry CR/LF or other control characters into a response header or a
/// log line (RFC 9110 §5.5: field values are visible ASCII, SP and HTAB).
public enum HeaderSafety {
    /// True when `s` is a legal, printable header value.
    public static func isSafe(_ s: String) -> Bool {
        func check(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
            for c in b where c != 0x09 && (c < 0x20 || c >= 0x7F) { return false }
            return true
        }
        if let r = s.utf8.withContiguousStorageIfAvailable(check) { return r }
        var copy = s
        copy.makeContiguousUTF8()
        return copy.utf8.withContiguousStorageIfAvailable(check) ?? false
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
