/// Upstream error text is untrusted: a proxy or a misconfigured base URL can
/// echo the request's `Authorization` header back. Nothing the upstream said
/// reaches a client or a log line without passing through `scrub` (matching
/// the exact key only let the key minus one character through).
public enum Redaction {
    public static let mark = "[redacted]"

    /// `text` with everything that looks like a credential replaced:
    /// - any run sharing 12 consecutive characters with a known secret;
    /// - `sk-…` tokens; the word after `Bearer`/`Basic`;
    /// - long random-looking tokens (24+ token characters, letters and digits).
    public static func scrub(_ text: String, secrets: [String]) -> String {
        let grams = Set(secrets.flatMap { windows(Array($0.utf8)) })
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        out.reserveCapacity(bytes.count)
        var i = 0
        var afterScheme = false
        while i < bytes.count {
            guard isTokenByte(bytes[i]) else {
                out.append(bytes[i])
                i += 1
                continue
            }
            var j = i
            while j < bytes.count, isTokenByte(bytes[j]) { j += 1 }
            let run = Array(bytes[i..<j])
            let word = String(decoding: run, as: UTF8.self)
            if afterScheme || looksSecret(run) || windows(run).contains(where: grams.contains) {
                out += Array(mark.utf8)
                afterScheme = false
            } else {
                let lower = word.lowercased()
                afterScheme = lower == "bearer" || lower == "basic"
                out += run
            }
            i = j
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
            || b == 0x2E || b == 0x2B || b == 0x2F || b == 0x3D || b == 0x7E
    }

    static func looksSecret(_ run: [UInt8]) -> Bool {
        if run.count >= 8, run[0] == 0x73, run[1] == 0x6B, run[2] == 0x2D { return true } // sk-
        guard run.count >= 24 else { return false }
        let letters = run.contains { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }
        let digits = run.contains { $0 >= 0x30 && $0 <= 0x39 }
        return letters && digits
    }

    static func windows(_ b: [UInt8], width: Int = 12) -> [ArraySlice<UInt8>] {
        guard b.count >= width else { return [] }
        return (0...(b.count - width)).map { b[$0..<($0 + width)] }
    }

    /// The Kimi error types a client may see as they are (Kimi API docs,
    /// error codes); anything else the upstream calls its error becomes the
    /// generic type for the status, never text copied from the upstream.
    public static let kimiTypes: Set<String> = [
        "invalid_request_error", "content_filter", "invalid_authentication_error", "incorrect_api_key_error",
        "exceeded_current_quota_error", "permission_denied_error", "resource_not_found_error", "rate_limit_reached_error",
        "engine_overloaded_error", "server_error", "unexpected_output", "timeout_error",
    ]

    public static func kimiType(_ type: String, status: Int) -> String {
        if kimiTypes.contains(type) { return type }
        switch status {
        case 401: return "invalid_authentication_error"
        case 403: return "permission_denied_error"
        case 404: return "resource_not_found_error"
        case 429: return "rate_limit_reached_error"
        case 400..<500: return "invalid_request_error"
        default: return "server_error"
        }
    }
}
