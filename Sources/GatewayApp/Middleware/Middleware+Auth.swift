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

    /// `.admin` routes: an admin key, whether or not `auth.required`. With no
    /// admin key configured the answer is 403: an admin route never opens up.
    static func authenticateAdmin(_ ctx: RequestContext) throws {
        let keys = ctx.config.auth.keys
        guard keys.contains(where: { $0.role == .admin }) else {
            throw GatewayError.forbidden("No admin key is configured (auth.keys[].role \"admin\")")
        }
        switch APIKeyAuth.check(headers: ctx.request.headers, keys: keys) {
        case let .valid(key):
            ctx.apiKey = key
            ctx.logNotes.append("key=\(key.name)(\(key.sha256.prefix(8)))")
            if key.role != .admin { throw GatewayError.forbidden("This API key is not an admin key") }
        case .none:
            throw GatewayError.unauthorized("Admin API key required: send x-api-key or Authorization: Bearer")
        case .invalid:
            ctx.logNotes.append("key=invalid")
            throw GatewayError.unauthorized("Invalid API key")
        }
    }
}
