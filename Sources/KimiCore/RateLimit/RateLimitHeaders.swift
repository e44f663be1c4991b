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
        let id = ASCIIText.build(capacity: policyName.utf8.count + 2) { w in w.byte(0x22); w.text(policyName); w.byte(0x22) }
        return [
            ("RateLimit-Policy", policyItem(id: id, limit: Int(gcra.limit), windowSeconds: windowSeconds)),
            ("RateLimit", stateItem(id: id, remaining: Int(decision.remaining), resetSeconds: Int(decision.resetSeconds))),
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
        let id = "\"tokens\""
        let items = [("RateLimit-Policy", policyItem(id: id, limit: Int(policy.limit), windowSeconds: Int(policy.windowMicros / 1_000_000))),
                     ("RateLimit", stateItem(id: id, remaining: Int(decision.remaining), resetSeconds: Int(decision.resetSeconds)))]
        for (name, item) in items {
            if let i = headers.firstIndex(where: { $0.0 == name }) {
                let list = headers[i].1
                headers[i].1 = ASCIIText.build(capacity: list.utf8.count + 2 + item.utf8.count) { w in
                    w.text(list); w.text(", "); w.text(item)
                }
            } else {
                headers.append((name, item))
            }
        }
    }

    static func policyItem(id: String, limit: Int, windowSeconds: Int) -> String {
        ASCIIText.build(capacity: id.utf8.count + 48) { w in
            w.text(id); w.text("; q="); w.number(limit); w.text("; w="); w.number(max(1, windowSeconds))
        }
    }

    static func stateItem(id: String, remaining: Int, resetSeconds: Int) -> String {
        ASCIIText.build(capacity: id.utf8.count + 48) { w in
            w.text(id); w.text("; r="); w.number(remaining); w.text("; t="); w.number(resetSeconds)
        }
    }
}
