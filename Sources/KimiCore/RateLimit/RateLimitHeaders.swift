/// Response headers of a limited route: the IETF draft (as express-rate-limit's
/// `draft-8`) and the legacy `X-RateLimit-*` set. `Retry-After` on 429s comes
/// from `GatewayError.rateLimited`.
public enum RateLimitHeaders {
    public static func headers(policyName: String, gcra: GCRA, decision: GCRA.Decision, nowMicros: Int64) -> [(String, String)] {
        let windowSeconds = Int(gcra.windowMicros / 1_000_000)
        let id = "\"\(policyName)\""
        return [
            ("RateLimit-Policy", "\(id); q=\(gcra.limit); w=\(max(1, windowSeconds))"),
            ("RateLimit", "\(id); r=\(decision.remaining); t=\(decision.resetSeconds)"),
            ("X-RateLimit-Limit", String(gcra.limit)),
            ("X-RateLimit-Remaining", String(decision.remaining)),
            // Legacy: the reset time in Unix seconds (as express-rate-limit's legacyHeaders).
            ("X-RateLimit-Reset", String(nowMicros / 1_000_000 + Int64(decision.resetSeconds))),
        ]
    }
}
