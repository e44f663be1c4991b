import KimiCore

extension Middleware {
    /// One limit per client across every process on the machine (GCRA over
    /// the shared file). Over it: 429 with Retry-After, nothing upstream.
    static func rateLimit(_ ctx: RequestContext, limiter: MachineRateLimiter) throws {
        let c = ctx.config
        guard c.rateLimit.enabled else { return }
        // A key's own policy, or the default one (whose key part is precomputed per config).
        let policy: GatewayConfig.RateLimitPolicy
        let policyName: String
        let policyKey: String
        if let k = ctx.apiKey, let own = k.rateLimit {
            (policy, policyName) = (own, "key-\(k.name)")
            policyKey = "\(policyName):\(own.maxRequests)/\(own.windowMs)"
        } else {
            (policy, policyName, policyKey) = (c.rateLimit.policy, "default", c.rateLimit.policyKey)
        }
        let client = ClientIdentity.of(remoteAddr: ctx.request.remoteAddr, forwardedFor: ctx.request.header("x-forwarded-for"),
                                       trustedProxies: c.server.trustedProxies, apiKeyHash: ctx.apiKey?.sha256)
        let gcra = GCRA(policy)
        let now = Clock.wallMicros()
        let key = RateLimiter.key(client: client, policy: policyKey)
        let decision = limiter.check(key: key, policy: gcra, config: c, now: now)
        ctx.responseHeaders += RateLimitHeaders.headers(policyName: policyName, gcra: gcra, decision: decision, nowMicros: now)
        if !decision.allowed {
            ctx.logNotes.append("limited")
            throw GatewayError.rateLimited(retryAfter: decision.retryAfterSeconds)
        }
    }
}
