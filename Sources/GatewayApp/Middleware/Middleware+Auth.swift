import KimiCore

extension Middleware {
    /// What the presented key is: a config-file key, else a key created at
    /// run time (`KeyDirectory`), which may have expired.
    enum KeyLookup {
        case none
        case valid(GatewayConfig.APIKey)
        case expired(GatewayConfig.APIKey)
        case invalid
    }

    static func lookUpKey(_ ctx: RequestContext, keys directory: KeyDirectory?) -> KeyLookup {
        switch APIKeyAuth.check(headers: ctx.request.headers, keys: ctx.config.auth.keys) {
        case let .valid(key): return .valid(key)
        case .none: return .none
        case .invalid:
            guard let directory, let presented = APIKeyAuth.presented(headers: ctx.request.headers), !presented.isEmpty,
                  presented.utf8.count <= 512,
                  let (key, expired) = directory.find(sha256: SHA256.hex(presented), nowMs: Clock.wallMicros() / 1000) else { return .invalid }
            return expired ? .expired(key) : .valid(key)
        }
    }

    /// API keys: required when `auth.required`; otherwise a valid key still
    /// identifies the client (its own limits and models) and an invalid one
    /// is ignored. An expired key is refused either way: it was a key.
    static func authenticate(_ ctx: RequestContext, keys: KeyDirectory?) throws {
        let auth = ctx.config.auth
        switch lookUpKey(ctx, keys: keys) {
        case let .valid(key):
            ctx.apiKey = key
            ctx.logNotes.append("key=\(key.name)(\(key.sha256.prefix(8)))")
        case let .expired(key):
            ctx.logNotes.append("key=\(key.name)(\(key.sha256.prefix(8))) expired")
            throw GatewayError.unauthorized("API key expired")
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
    /// admin key configured or created the answer is 403: an admin route
    /// never opens up.
    static func authenticateAdmin(_ ctx: RequestContext, keys: KeyDirectory?) throws {
        guard ctx.config.auth.keys.contains(where: { $0.role == .admin }) || keys?.snapshot().hasAdmin == true else {
            throw GatewayError.forbidden("No admin key is configured (auth.keys[].role \"admin\")")
        }
        switch lookUpKey(ctx, keys: keys) {
        case let .valid(key):
            ctx.apiKey = key
            ctx.logNotes.append("key=\(key.name)(\(key.sha256.prefix(8)))")
            if key.role != .admin { throw GatewayError.forbidden("This API key is not an admin key") }
        case .expired:
            throw GatewayError.unauthorized("API key expired")
        case .none:
            throw GatewayError.unauthorized("Admin API key required: send x-api-key or Authorization: Bearer")
        case .invalid:
            ctx.logNotes.append("key=invalid")
            throw GatewayError.unauthorized("Invalid API key")
        }
    }
}
