/// The one normalisation of a request path, done once when the request is
/// built (`Request.init`), so routing and every policy that hangs on a route
/// see the same string (`/health/` used to skip the exemption
/// that `/health` had).
///
/// RFC 3986 §6.2.2: percent-encoded *unreserved* characters are decoded
/// (`%2e` → `.`, `%41` → `A`; §2.3), dot segments are removed (§5.2.4,
/// clamped at the root as the RFC says), and empty segments (`//`) and a
/// trailing slash are dropped; a `%` that starts no escape becomes `%25`,
/// so the form is stable (normalising twice changes nothing). Anything else
/// stays as sent: paths are
/// case-sensitive, so `/HEALTH` matches no route, and `%2F` stays encoded
/// (a slash inside a segment is not a separator).
public enum RoutePath {
    public static func normalise(_ raw: String) -> String {
        if isAlreadyNormal(raw.utf8) { return raw }
        var segments: [[UInt8]] = []
        var current: [UInt8] = []
        var bytes = Array(raw.utf8)
        if bytes.first != 0x2F { bytes.insert(0x2F, at: 0) }
        func close() {
            switch current {
            case [], [0x2E]: break
            case [0x2E, 0x2E]: if !segments.isEmpty { segments.removeLast() }
            default: segments.append(current)
            }
            current.removeAll(keepingCapacity: true)
        }
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x2F {
                close()
            } else if b == 0x25, i + 2 < bytes.count, let hi = hex(bytes[i + 1]), let lo = hex(bytes[i + 2]) {
                if isUnreserved(hi << 4 | lo) {
                    current.append(hi << 4 | lo)
                } else {
                    current += bytes[i...(i + 2)]
                }
                i += 2
            } else if b == 0x25 {
                // A `%` that starts no escape is escaped itself: otherwise a
                // decoded neighbour could complete a new escape ("%4%41" →
                // "%4A") and a second normalisation would change the path
                // (found by the `path` fuzz target).
                current += [0x25, 0x32, 0x35]
            } else {
                current.append(b)
            }
            i += 1
        }
        close()
        if segments.isEmpty { return "/" }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for s in segments { out.append(0x2F); out += s }
        return String(decoding: out, as: UTF8.self)
    }

    /// The fast path for every ordinary request: starts with `/`, no `%`,
    /// no empty, `.` or `..` segment, no trailing slash.
    static func isAlreadyNormal(_ s: String.UTF8View) -> Bool {
        guard s.first == 0x2F else { return false }
        if s.count == 1 { return true }
        var length = 0 // of the current segment
        var dots = 0 // how many of its bytes are `.`
        for b in s.dropFirst() {
            if b == 0x25 { return false }
            if b == 0x2F {
                if length == 0 || (length == dots && length <= 2) { return false }
                length = 0
                dots = 0
            } else {
                length += 1
                if b == 0x2E { dots += 1 }
            }
        }
        return length > 0 && !(length == dots && length <= 2)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    /// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
    static func isUnreserved(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
            || c == 0x2D || c == 0x2E || c == 0x5F || c == 0x7E
    }
}
