import KimiCore

extension Middleware {
    /// API keys: required when `auth.required`; otherwise a valid key still
    /// identifies the client (its own limits and models) and an invalid one
    /// is ignored.
    static func authenticate(_ ctx: RequestContext) throws {
        let auth = ctx.config.auth
        switch APIKeyAuth.check(headers: ctx.request.headers, keys: auth.keys) {
        case let .valid(key):
            ctx.apiKey = key
            ctx.logNotes.append("key=\(key.name)(\(key.sha256.prefix(8)))")
        case .none:
            if auth.required { throw GatewayError.unauthorized("API key required: send x-api-key or Authorization: Bearer") }
        case .invalid:
            if auth.required {
                ctx.logNotes.append("key=invalid")
                throw GatewayError.unauthorized("Invalid API key")
            }
        }
    }
}
