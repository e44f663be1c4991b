/// Values that came from a request (an Origin, a model name, a path) must
/// never carry CR/LF or other control characters into a response header or a
/// log line (RFC 9110 §5.5: field values are visible ASCII, SP and HTAB).
public enum HeaderSafety {
    /// True when `s` is a legal, printable header value.
    public static func isSafe(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 < 0x7F) }
    }

    /// `s` with every byte outside visible ASCII replaced by `?`, cut to `max`.
    public static func printable(_ s: String, max: Int = 200) -> String {
        var out = ""
        out.reserveCapacity(min(s.utf8.count, max))
        for b in s.utf8.prefix(max) {
            out.unicodeScalars.append(b >= 0x20 && b < 0x7F ? Unicode.Scalar(b) : "?")
        }
        if s.utf8.count > max { out += "…" }
        return out
    }
}
