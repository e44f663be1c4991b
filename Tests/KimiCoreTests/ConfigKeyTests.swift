@testable import KimiCore
import Foundation
import Testing

/// One declaration per config key (issue #31): the parser, the environment
/// overlay, the reload rule and the README's table all come from
/// `GatewayConfig.keys`.
@Suite struct ConfigKeyTests {
    @Test func theReadmesTableIsTheDeclarations() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- config-keys:"))
        let end = try #require(text.range(of: "<!-- /config-keys -->"))
        let body = text[begin.upperBound..<end.lowerBound].drop { $0 != "\n" }.dropFirst()
        // When this fails: `kimi-gateway check-config --keys-table` prints the table to paste.
        #expect(String(body) == ConfigKey.markdownTable())
    }

    @Test func everyKeyIsDeclaredOnceAndEveryVariableOnce() {
        let paths = GatewayConfig.keys.map(\.path).filter { !$0.isEmpty }
        #expect(Set(paths).count == paths.count)
        let envs = GatewayConfig.keys.compactMap(\.env)
        #expect(Set(envs).count == envs.count)
        #expect(Set(GatewayConfig.environmentKeys) == Set(envs + GatewayConfig.tracesVariables.values))
        for k in GatewayConfig.keys where !k.path.isEmpty { #expect(!k.doc.isEmpty && k.path.contains("."), "\(k.path)") }
    }

    @Test func eachDeclarationIsWhatTheFileAndTheEnvironmentSet() throws {
        // Every declared integer key, from the file: its minimum is taken and one below is refused with its name.
        let c = try GatewayConfig.parse(fileBytes: Array(#"{"upstream":{"retries":5},"usage":{"drainIntervalMs":250},"redis":{"prefix":"p:"}}"#.utf8))
        #expect(c.upstream.retries == 5 && c.usage.drainIntervalMs == 250 && c.redis.prefix == "p:")
        let e = #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"documents":{"answerReserveTokens":0}}"#.utf8)) }
        #expect(e?.key == "documents.answerReserveTokens" && e?.problem == "must be at least 1, got 0")
        // An unknown key names the section's declared ones.
        let u = #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"redis":{"url":"redis://x","prefx":"a"}}"#.utf8)) }
        #expect(u?.key == "redis.prefx" && u?.problem.contains("prefix, timeoutMs, url") == true)
        #expect(throws: ConfigError.self) { try GatewayConfig.parse(fileBytes: Array(#"{"nonsense":{}}"#.utf8)) }
        // From the environment: declared variables, with their checks.
        let env = try GatewayConfig().applying(env: ["RATE_LIMIT_MAX_REQUESTS": " 42 ", "KIMI_SIMULATED": "yes", "ALLOWED_ORIGINS": "https://a.example, https://b.example",
                                                    "LOG_FORMAT": "json", "KIMI_DATABASE": "/tmp/x.db", "REDIS_PASSWORD": " pw "])
        #expect(env.rateLimit.policy.maxRequests == 42 && env.upstream.simulated && env.log.format == .json)
        #expect(env.cors.allowedOrigins == ["https://a.example", "https://b.example"] && env.storage.database == "/tmp/x.db")
        #expect(env.redis.password == " pw ")
        let bad = #expect(throws: ConfigError.self) { try GatewayConfig().applying(env: ["MAX_BODY_BYTES": "0"]) }
        #expect(bad?.key == "MAX_BODY_BYTES")
    }

    @Test func restartOnlyKeysAreTheDeclaredOnesAndAReloadKeepsThem() {
        let restart = Set(GatewayConfig.keys.filter { $0.reload == .restart }.map(\.path))
        #expect(restart == ["rateLimit.file", "rateLimit.tableSize", "server.minThreads", "server.maxThreads", "server.readTimeoutMs",
                            "server.batchScheduling", "storage.database", "usage.database", "usage.drainIntervalMs", "documents.cacheDir",
                            "documents.cacheBytes"])
        var fresh = GatewayConfig()
        fresh.usage.drainIntervalMs = 999
        fresh.upstream.retries = 9
        let (kept, refused) = fresh.keepingRestartOnly(from: GatewayConfig())
        #expect(kept.usage.drainIntervalMs == 100 && kept.upstream.retries == 9)
        #expect(refused == ["usage.drainIntervalMs (999 → kept 100)"])
    }
}
