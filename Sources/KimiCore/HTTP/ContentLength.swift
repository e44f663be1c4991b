/// Strict `CONTENT_LENGTH` (RFC 3875 §4.1.2, RFC 9110 §8.6): ASCII digits
/// only, no sign, no whitespace, no leading `+`, checked against the cap
/// before a single byte of body is allocated.
public enum ContentLength {
    public static func parse(_ raw: String?, cap: Int) -> Result<Int, GatewayError> {
        guard let raw, !raw.isEmpty else { return .success(0) }
        guard raw.utf8.count <= 19, raw.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return .failure(.badRequest("invalid Content-Length"))
        }
        // 19 digits can still overflow Int64: treat overflow as "too large".
        guard let n = Int(raw) else { return .failure(.payloadTooLarge(limit: cap)) }
        if n > cap { return .failure(.payloadTooLarge(limit: cap)) }
        return .success(n)
    }
}
