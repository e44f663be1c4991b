import KimiCore

extension Middleware {
    /// One limit per client across every process on the machine (GCRA over
    /// the shared file). Over it: 429 with Retry-After, nothing upstream.
    static func rateLimit(_ ctx: RequestContext, limiter: MachineRateLimiter) throws {
        let c = ctx.config
        guard c.rateLimit.enabled else { return }
        // A key's own policy, or the default one (whose key part is precomputed per config).
        let policy: GatewayConfig.RateLimitPolicy
        let policyKey: String
        if let k = ctx.apiKey, let own = k.rateLimit {
            policy = own
            policyKey = "key-\(k.name):\(own.maxRequests)/\(own.windowMs)"
        } else {
            (policy, policyKey) = (c.rateLimit.policy, c.rateLimit.policyKey)
        }
        let gcra = GCRA(policy)
        let now = Clock.wallMicros()
        let key = RateLimiter.key(client: ctx.clientIdentity, policy: policyKey)
        let decision = limiter.check(key: key, policy: gcra, config: c, now: now)
        ctx.responseHeaders += RateLimitHeaders.headers(gcra: gcra, decision: decision, nowMicros: now)
        if !decision.allowed {
            ctx.logNotes.append("limited")
            ctx.metricsNotes.rateLimited = "requests"
            throw GatewayError.rateLimited(retryAfter: decision.retryAfterSeconds)
        }
    }
}
