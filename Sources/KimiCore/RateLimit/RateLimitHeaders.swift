/// Response headers of a limited route: the IETF draft (draft-8, as
/// express-rate-limit's `draft-8`), one list item per policy in force —
/// `"requests"` and, on chat routes with a token limit, `"tokens"` — and the
/// legacy `X-RateLimit-*` set for the request policy. `Retry-After` on 429s
/// comes from the `GatewayError`.
public enum RateLimitHeaders {
    public static let requestsPolicy = "requests"
    public static let tokensPolicy = "tokens"

    public static func headers(policyName: String = requestsPolicy, gcra: GCRA, decision: GCRA.Decision, nowMicros: Int64) -> [(String, String)] {
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

    /// Adds the token policy's items to `headers`: appended to the
    /// `RateLimit-Policy` and `RateLimit` lists when the request policy put
    /// them there, as the lists' only items otherwise.
    public static func addTokens(to headers: inout [(String, String)], policy: TokenGCRA, decision: TokenGCRA.Decision) {
        let id = "\"\(tokensPolicy)\""
        let items = [("RateLimit-Policy", "\(id); q=\(policy.limit); w=\(max(1, policy.windowMicros / 1_000_000))"),
                     ("RateLimit", "\(id); r=\(decision.remaining); t=\(decision.resetSeconds)")]
        for (name, item) in items {
            if let i = headers.firstIndex(where: { $0.0 == name }) {
                headers[i].1 += ", " + item
            } else {
                headers.append((name, item))
            }
        }
    }
}
