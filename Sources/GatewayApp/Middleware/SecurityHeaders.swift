import KimiCore

/// The browser-facing header set that helmet 8 (the Express middleware)
/// sends with its defaults, value for value, on every response: 200s,
/// errors, 429s and streams. `test_access_control.py` holds the same list
/// as the expected headers.
/// The CSP is the one the static test page is written to live under.
public enum SecurityHeaders {
    public static let contentSecurityPolicy =
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"

    public static let all: [(String, String)] = [
        ("Content-Security-Policy", contentSecurityPolicy),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("Origin-Agent-Cluster", "?1"),
        ("Referrer-Policy", "no-referrer"),
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-DNS-Prefetch-Control", "off"),
        ("X-Download-Options", "noopen"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-Permitted-Cross-Domain-Policies", "none"),
        ("X-XSS-Protection", "0"),
    ]

    /// The set as header lines, serialized once for every response.
    public static let serialized: [UInt8] = {
        var out: [UInt8] = []
        for (name, value) in all {
            precondition(HeaderSafety.isSafe(name) && HeaderSafety.isSafe(value))
            out += Array("\(name): \(value)\r\n".utf8)
        }
        return out
    }()
}
