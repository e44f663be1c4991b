import Glibc
import Testing
@testable import KimiCore

@Suite struct ConfigParseTests {
    @Test func defaultsMatchTheNodeBackendAndTheModels() throws {
        let c = GatewayConfig()
        #expect(c.rateLimit.policy == .init(windowMs: 900_000, maxRequests: 100))
        // Sized so a prompt for the largest context (262,144 tokens) fits.
        #expect(c.limits.maxChars >= 262_144 * 4 && c.server.maxBodyBytes >= 390_000 * 6)
        #expect(c.upstream.baseURL == "https://api.moonshot.cn/v1")
        #expect(!c.auth.required)
    }

    @Test func parsesEveryFace() throws {
        let c = try GatewayConfig.parse(fileBytes: Array("""
        {"upstream":{"baseURL":"https://api.moonshot.ai/v1","defaultModel":"m1","models":["m1",{"id":"m2","contextLength":99}]},
         "server":{"maxBodyBytes":2048,"maxThreads":64,"trustedProxies":["10.0.0.1"]},
         "auth":{"required":true,"keys":[{"key":"k1","name":"web","models":["m1"],"rateLimit":{"windowMs":1000,"maxRequests":5}},
                                         {"sha256":"\(SHA256.hex("k2"))"}]},
         "cors":{"allowedOrigins":["https://app.example.com"]},
         "rateLimit":{"windowMs":60000,"maxRequests":10},
         "limits":{"maxMessages":3,"maxChars":100,"maxTokens":50}}
        """.utf8)).validated()
        #expect(c.upstream.models == [.init(id: "m1", contextLength: 8192), .init(id: "m2", contextLength: 99)])
        #expect(c.server.maxBodyBytes == 2048 && c.server.trustedProxies == ["10.0.0.1"])
        #expect(c.auth.keys[0].sha256 == SHA256.hex("k1") && c.auth.keys[0].name == "web")
        #expect(c.auth.keys[0].rateLimit == .init(windowMs: 1000, maxRequests: 5))
        #expect(c.auth.keys[1].sha256 == SHA256.hex("k2"))
        #expect(c.limits.maxTokens == 50)
    }

    @Test func keysAreClientsUnlessTheirRoleSaysAdmin() throws {
        let c = try GatewayConfig.parse(fileBytes: Array(#"{"auth":{"keys":["a",{"key":"b"},{"key":"c","role":"admin"}]}}"#.utf8))
        #expect(c.auth.keys.map(\.role) == [.client, .client, .admin])
    }

    @Test func fileQuotasDefaultToABoundAndZeroLiftsThem() throws {
        #expect(GatewayConfig().limits.maxFilesPerKey == 100 && GatewayConfig().limits.maxFileBytesPerKey == 1 << 30)
        let c = try GatewayConfig.parse(fileBytes: Array(#"{"limits":{"maxFilesPerKey":0,"maxFileBytesPerKey":2048}}"#.utf8))
        #expect(c.limits.maxFilesPerKey == 0 && c.limits.maxFileBytesPerKey == 2048)
        #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"limits":{"maxFilesPerKey":-1}}"#.utf8)) }
    }

    @Test func messagesNameTheKeyAndTheProblem() throws {
        func err(_ s: String) -> String {
            do { _ = try GatewayConfig.parse(fileBytes: Array(s.utf8)).validated(); return "" } catch { return error.description }
        }
        #expect(err(#"{"rateLimit":{"maxRequests":"ten"}}"#) == "rateLimit.maxRequests: must be an integer, got string")
        #expect(err(#"{"rateLimit":{"maxRequests":0}}"#) == "rateLimit.maxRequests: must be at least 1, got 0")
        #expect(err(#"{"rateLimt":{}}"#).hasPrefix("rateLimt: unknown key"))
        #expect(err(#"{"upstream":{"baseURL":"http://api.moonshot.cn/v1"}}"#).hasPrefix("upstream.baseURL: must use https"))
        #expect(err(#"{"upstream":{"models":["a"],"defaultModel":"nope"}}"#) == #"upstream.defaultModel: "nope" is not in upstream.models"#)
        #expect(err(#"{"auth":{"required":true}}"#).hasPrefix("auth.keys: auth is required but no keys"))
        #expect(err(#"{"auth":{"keys":[{"sha256":"abc"}]}}"#).hasPrefix("auth.keys[0].sha256: must be 64 hex digits"))
        #expect(err(#"{"auth":{"keys":[{"key":"k","role":"root"}]}}"#) == #"auth.keys[0].role: must be one of "client", "admin", got "root""#)
        #expect(err(#"{"cors":{"allowedOrigins":["https://a.com/path"]}}"#).hasPrefix("cors.allowedOrigins[0]"))
        #expect(err("{not json").hasPrefix("not valid JSON"))
        #expect(err(#"{"log":{"format":"yaml"}}"#) == #"log.format: must be "text" or "json", got "yaml""#)
        #expect(err(#"{"log":{"level":"debug"}}"#).hasPrefix("log.level: unknown key"))
        #expect(try GatewayConfig.parse(fileBytes: Array(#"{"log":{"format":"JSON"}}"#.utf8)).log.format == .json)
        #expect(try GatewayConfig().applying(env: ["LOG_FORMAT": "json"]).log.format == .json)
        #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["LOG_FORMAT": "xml"]) }
        #expect(err(#"{"upstream":{"idleTimeoutMs":99999999999999999}}"#) == "upstream.idleTimeoutMs: must be at most 86400000, got 99999999999999999")
        #expect(err(#"{"rateLimit":{"windowMs":9000000000000000000}}"#).hasPrefix("rateLimit.windowMs: must be at most"))
    }

    @Test func aRequestLimitFinerThanTheLimitersMicrosecondIsRefused() throws {
        func err(_ s: String) -> String {
            do { _ = try GatewayConfig.parse(fileBytes: Array(s.utf8)).validated(); return "" } catch { return error.description }
        }
        // One a microsecond is the finest GCRA can count: accepted.
        #expect(err(#"{"rateLimit":{"windowMs":60000,"maxRequests":60000000}}"#) == "")
        #expect(err(#"{"rateLimit":{"windowMs":60000,"maxRequests":60000001}}"#)
            .hasPrefix("rateLimit.maxRequests: 60000001 per 60000 ms is finer than the limiter's 1 µs"))
        #expect(err(#"{"auth":{"keys":["a",{"key":"b","rateLimit":{"windowMs":1,"maxRequests":1001}}]}}"#)
            .hasPrefix("auth.keys[1].rateLimit.maxRequests: 1001 per 1 ms"))
        #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["RATE_LIMIT_WINDOW_MS": "1", "RATE_LIMIT_MAX_REQUESTS": "5000"]).validated() }
    }

    @Test func httpIsAcceptedForLoopbackOnly() throws {
        var c = GatewayConfig()
        c.upstream.baseURL = "http://127.0.0.1:8080/v1"
        #expect((try? c.validated()) != nil)
        c.upstream.baseURL = "http://10.1.1.1/v1"
        #expect((try? c.validated()) == nil)
    }
}

@Suite struct ConfigEnvTests {
    @Test func environmentOverridesTheFile() throws {
        let c = try GatewayConfig().applying(env: [
            "KIMI_API_KEY": "sk-x", "KIMI_BASE_URL": "https://api.moonshot.ai/v1", "RATE_LIMIT_WINDOW_MS": "60000",
            "RATE_LIMIT_MAX_REQUESTS": "5", "REQUIRE_API_KEY": "true", "VALID_API_KEYS": "a, b,,",
            "ALLOWED_ORIGINS": "https://x.com,https://y.com", "PORT": "3000",
        ]).validated()
        #expect(c.upstream.apiKey == "sk-x" && c.upstream.baseURL == "https://api.moonshot.ai/v1")
        #expect(c.rateLimit.policy == .init(windowMs: 60000, maxRequests: 5))
        #expect(c.auth.required && c.auth.keys.map(\.sha256) == [SHA256.hex("a"), SHA256.hex("b")])
        #expect(c.cors.allowedOrigins == ["https://x.com", "https://y.com"])
    }

    @Test func hugeEnvironmentValuesAreRefusedNotTrapped() throws {
        #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["RATE_LIMIT_WINDOW_MS": "9223372036854775807"]) }
    }

    @Test func badEnvironmentValuesAreNamed() throws {
        #expect(throws: ConfigError("RATE_LIMIT_MAX_REQUESTS", "must be an integer, got \"lots\"")) {
            try GatewayConfig().applying(env: ["RATE_LIMIT_MAX_REQUESTS": "lots"])
        }
        #expect(throws: ConfigError("REQUIRE_API_KEY", "must be true or false, got \"maybe\"")) {
            try GatewayConfig().applying(env: ["REQUIRE_API_KEY": "maybe"])
        }
    }

    @Test func dotEnvParsesLikeDotenv() throws {
        let e = DotEnv.parse("""
        # comment
        export KIMI_API_KEY="sk-abc"
        RATE_LIMIT_MAX_REQUESTS=50 # trailing
        ALLOWED_ORIGINS='https://a.com'
        BAD LINE
        MULTI="a\\nb"
        """)
        #expect(e == ["KIMI_API_KEY": "sk-abc", "RATE_LIMIT_MAX_REQUESTS": "50", "ALLOWED_ORIGINS": "https://a.com", "MULTI": "a\nb"])
    }

    @Test func trimsCRLFAsOneCharacter() throws {
        #expect(" value\r\n".trimmingSpaces() == "value")
        #expect("\t\r\nx y\n".trimmingSpaces() == "x y")
    }

    @Test func processEnvironmentWinsOverDotEnv() throws {
        #expect(DotEnv.merged(dotEnv: ["A": "file", "B": "file"], processEnv: ["A": "real"]) == ["A": "real", "B": "file"])
    }
}

@Suite(.serialized) struct ConfigCacheTests {
    let dir: String = {
        var t = Array("/tmp/kimi-config-test-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&t)!)
    }()

    func write(_ text: String) {
        FileIO.write(dir + "/gateway.json", Array(text.utf8))
    }

    /// A cache over `text` as the config file.
    func cache(_ text: String, interval: UInt64 = 0) throws -> ConfigCache {
        write(text)
        return try ConfigCache(source: ConfigSource(path: dir + "/gateway.json", processEnv: [:]), checkIntervalNanos: interval)
    }

    @Test func reloadsOnChange() throws {
        let cache = try cache(#"{"rateLimit":{"maxRequests":10}}"#)
        #expect(cache.current().rateLimit.policy.maxRequests == 10)
        write(#"{"rateLimit":{"maxRequests":20}}"#)
        #expect(cache.current().rateLimit.policy.maxRequests == 20)
    }

    @Test func keepsOldConfigWhenNewFileIsBroken() throws {
        let cache = try cache(#"{"rateLimit":{"maxRequests":10}}"#)
        write(#"{"rateLimit":{"maxRequests":"#)
        #expect(cache.current().rateLimit.policy.maxRequests == 10)
        write(#"{"rateLimit":{"maxRequests":-3}}"#)
        #expect(cache.current().rateLimit.policy.maxRequests == 10)
        write(#"{"rateLimit":{"maxRequests":30}}"#)
        #expect(cache.current().rateLimit.policy.maxRequests == 30)
    }

    @Test func checksAtMostOncePerInterval() throws {
        let cache = try cache(#"{"rateLimit":{"maxRequests":10}}"#, interval: 60_000_000_000)
        write(#"{"rateLimit":{"maxRequests":99}}"#)
        #expect(cache.current().rateLimit.policy.maxRequests == 10)
    }

    @Test func readsDotEnvBesideTheConfig() throws {
        FileIO.write(dir + "/.env", Array("RATE_LIMIT_MAX_REQUESTS=7\n".utf8))
        defer { unlink(dir + "/.env") }
        let cache = try cache("{}")
        #expect(cache.current().rateLimit.policy.maxRequests == 7)
    }
}
