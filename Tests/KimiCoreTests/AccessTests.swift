import Testing
@testable import KimiCore

@Suite struct APIKeyAuthTests {
    let keys = [GatewayConfig.APIKey(sha256: SHA256.hex("sk-good"), name: "web")]

    @Test func acceptsBothHeaderStyles() throws {
        #expect(APIKeyAuth.check(headers: ["x-api-key": "sk-good"], keys: keys) == .valid(keys[0]))
        #expect(APIKeyAuth.check(headers: ["authorization": "Bearer sk-good"], keys: keys) == .valid(keys[0]))
        #expect(APIKeyAuth.check(headers: ["authorization": "bearer   sk-good "], keys: keys) == .valid(keys[0]))
    }

    @Test func missingEmptyWrongAndWrongLength() throws {
        #expect(APIKeyAuth.check(headers: [:], keys: keys) == .none)
        #expect(APIKeyAuth.check(headers: ["authorization": "Bearer "], keys: keys) == .invalid)
        #expect(APIKeyAuth.check(headers: ["authorization": "Bearer"], keys: keys) == .invalid)
        #expect(APIKeyAuth.check(headers: ["x-api-key": ""], keys: keys) == .invalid)
        #expect(APIKeyAuth.check(headers: ["x-api-key": "sk-bad!"], keys: keys) == .invalid)
        #expect(APIKeyAuth.check(headers: ["x-api-key": "sk-goo"], keys: keys) == .invalid)
        #expect(APIKeyAuth.check(headers: ["x-api-key": String(repeating: "k", count: 5000)], keys: keys) == .invalid)
        #expect(APIKeyAuth.check(headers: ["authorization": "Basic c2stZ29vZA=="], keys: keys) == .invalid)
    }
}

@Suite struct CORSTests {
    let allowed = ["https://app.example.com", "http://localhost:3000"]

    @Test func allowedOriginIsEchoedWithVary() throws {
        guard case let .allowed(h) = CORS.verdict(origin: "https://app.example.com", allowed: allowed) else { Issue.record("denied"); return }
        #expect(h.contains { $0 == ("Access-Control-Allow-Origin", "https://app.example.com") })
        #expect(h.contains { $0 == ("Vary", "Origin") })
        #expect(h.contains { $0.0 == "Access-Control-Expose-Headers" && $0.1.contains("Retry-After") && $0.1.contains("RateLimit") })
    }

    @Test func defaultPortIsTheSameOrigin() throws {
        #expect(CORS.verdict(origin: "https://app.example.com:443", allowed: allowed) != .denied)
    }

    @Test func disallowedAndMalformedOrigins() throws {
        #expect(CORS.verdict(origin: "https://evil.example.com", allowed: allowed) == .denied)
        #expect(CORS.verdict(origin: "https://app.example.com.evil.com", allowed: allowed) == .denied)
        #expect(CORS.verdict(origin: "https://app.example.com\r\nSet-Cookie: x=1", allowed: allowed) == .denied)
        #expect(CORS.verdict(origin: "null", allowed: allowed) == .denied)
        #expect(CORS.verdict(origin: nil, allowed: allowed) == .notCORS)
    }

    @Test func starOnlyWhenWritten() throws {
        #expect(CORS.verdict(origin: "https://any.site", allowed: ["*"]) != .denied)
        #expect(CORS.verdict(origin: "https://any.site", allowed: []) == .denied)
    }
}
