/// The token counts of an upstream `usage` object, as input rather than
/// truth: each count is clamped to 0…`bound` (the model's context plus the
/// request's completion tokens: no real answer reports more), and a count
/// that had to be clamped marks the whole row (`clamped`). An upstream that
/// reports `prompt_tokens` 2^63−1 crashed a worker on the first sum; one
/// reporting −5,000,000 grew a key's budget by as much.
///
/// Kimi reports cache hits as top-level `cached_tokens`; OpenAI's spelling
/// is `prompt_tokens_details.cached_tokens` (some answers carry both; the
/// top-level one wins). Cached tokens are part of the prompt, so never more
/// than it.
public struct ReportedTokens: Equatable, Sendable {
    public let prompt: Int
    public let completion: Int
    public let cached: Int?
    /// Some count was out of range (negative, beyond the bound, not an integer).
    public let clamped: Bool

    public init(prompt: Int, completion: Int, cached: Int? = nil, clamped: Bool = false) {
        (self.prompt, self.completion, self.cached, self.clamped) = (prompt, completion, cached, clamped)
    }

    public init(_ u: JSON, bound: Int) {
        let bound = max(0, bound)
        var clamped = false
        func count(_ v: JSON?) -> Int? {
            guard let v, !v.isNull else { return nil }
            guard let n = v.intValue else {
                clamped = true
                // A number too large for an integer (1e300) is beyond any bound.
                if let d = v.doubleValue, d > 0 { return bound }
                return 0
            }
            if n < 0 { clamped = true; return 0 }
            if n > bound { clamped = true; return bound }
            return n
        }
        let prompt = count(u["prompt_tokens"]) ?? 0
        let completion = count(u["completion_tokens"]) ?? 0
        var cached = count(u["cached_tokens"]) ?? count(u["prompt_tokens_details"]?["cached_tokens"])
        if let c = cached, c > prompt { cached = prompt; clamped = true }
        self.init(prompt: prompt, completion: completion, cached: cached, clamped: clamped)
    }

    public var total: Int { prompt &+ completion }
}

extension Int {
    /// `self + other`, held at `Int.max` / `Int.min` instead of trapping:
    /// every sum of counts that came from outside goes through this.
    @inline(__always) public func addingSaturated(_ other: Int) -> Int {
        let (r, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : r
    }
}
