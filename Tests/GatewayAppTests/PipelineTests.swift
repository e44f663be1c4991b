import Glibc
import Testing
@testable import GatewayApp
@testable import KimiCore

/// The request pipeline driven without sockets: `Gateway.dispatch` with a
/// `BufferedResponse`.
@Suite struct PipelineTests {
    let gateway = Self.makeGateway()

    /// A gateway over `configJSON` (none: the defaults) in a private
    /// directory: the machine's default limiter table would carry quotas
    /// from earlier runs (100 per 15 min) into this one.
    static func makeGateway(configJSON: String? = nil) -> Gateway {
        var template = Array("/tmp/kimi-pipeline-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        var path: String?
        if let configJSON {
            path = dir + "/config.json"
            let f = fopen(path!, "w")!
            fputs(configJSON, f)
            fclose(f)
        }
        let cache = try! ConfigCache(source: ConfigSource(path: path, processEnv: ["RATE_LIMIT_FILE": dir + "/ratelimit.bin"]))
        return Gateway(configCache: cache, services: Services())
    }

    func run(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "", on g: Gateway? = nil) -> BufferedResponse {
        let g = g ?? gateway
        let out = BufferedResponse()
        // As the web server hands it over: the query string split off by `Request.head`.
        var req = Request.head(params: ["REQUEST_METHOD": method, "REQUEST_URI": path], requestID: "test")
        req.headers = headers
        req.body = Array(body.utf8)
        g.dispatch(RequestContext(request: req, writer: out, config: g.configCache.current()))
        return out
    }

    @Test func healthHasBothShapes() throws {
        let r = run("GET", "/health")
        #expect(r.status == 200)
        let j = try #require(r.json)
        #expect(j["success"] == true && j["status"] == "healthy" && j["engine"] == "ready")
        #expect(j["version"] == .string(Version.current) && j["timestamp"]?.stringValue?.hasSuffix("Z") == true)
    }

    @Test func unknownRouteIs404InEachFace() throws {
        #expect(run("GET", "/api/nope").json == ["success": false, "error": "Route not found: /api/nope"])
        let v1 = run("GET", "/v1/nope")
        #expect(v1.status == 404 && v1.json?["error"]?["type"] == "invalid_request_error")
    }

    @Test func wrongMethodIs405WithAllow() throws {
        let r = run("DELETE", "/api/chat/completion")
        #expect(r.status == 405 && r.header("Allow") == "POST, OPTIONS")
    }

    @Test func infoListsEndpointsAndModels() throws {
        let j = try #require(run("GET", "/api/info").json)
        let paths = j["data"]?["endpoints"]?.arrayValue?.compactMap { $0["path"]?.stringValue } ?? []
        #expect(paths.contains("/v1/chat/completions") && paths.contains("/health"))
        #expect(j["data"]?["models"]?[0]?["id"] == "moonshot-v1-8k")
    }

    struct Boom: Error {}

    @Test func aThrowingHandlerIsA500InTheFacesFormatAndIsLogged() throws {
        let g = Self.makeGateway()
        g.add("GET", "/api/boom", access: .client) { _ in throw Boom() }
        g.add("GET", "/v1/boom", access: .client) { _ in throw Boom() }
        var logged: [String] = []
        let saved = Log.sink
        Log.sink = { logged.append($0) }
        defer { Log.sink = saved }
        for (path, check) in [("/api/boom", { (j: JSON) in j == ["success": false, "error": "Internal server error"] }),
                              ("/v1/boom", { (j: JSON) in j["error"]?["type"] == "server_error" })] {
            let out = BufferedResponse()
            g.dispatch(RequestContext(request: Request(method: "GET", path: path), writer: out, config: g.configCache.current()))
            #expect(out.status == 500)
            #expect(check(try #require(out.json)))
        }
        #expect(logged.filter { $0.contains("handler failed") && $0.contains("Boom") }.count == 2)
    }

    @Test func badChatBodiesNeverReachTheUpstream() throws {
        // The default upstream is unreachable from here: a 400 proves validation came first.
        #expect(run("POST", "/v1/chat/completions", body: "not json").status == 400)
        #expect(run("POST", "/api/chat/completion", body: #"{"message":""}"#).json?["success"] == false)
        #expect(run("POST", "/v1/chat/completions", headers: ["content-type": "text/plain"], body: "{}").status == 400)
    }

    // MARK: access is the route's, for every spelling of its path

    static let clientKey = "pipeline-client-" + String(repeating: "c", count: 8)
    static let adminKey = "pipeline-admin-" + String(repeating: "a", count: 8)

    static func securedGateway(adminKey: Bool = true) -> Gateway {
        let admin = adminKey ? #", {"key": "\#(Self.adminKey)", "name": "ops", "role": "admin"}"# : ""
        let g = makeGateway(configJSON: #"{"auth": {"required": true, "keys": [{"key": "\#(clientKey)", "name": "app"}\#(admin)]}}"#)
        g.add("GET", "/api/admin-probe", access: .admin) { ctx in ctx.json(200, ["success": true]) }
        return g
    }

    static let spellings: [(String) -> String] = [
        { $0 }, { $0 + "/" }, { "/" + $0 }, { "/api/%2e%2e" + $0 }, { "/x/.." + $0 }, { $0 + "?a=/../b" },
    ]

    @Test func everySpellingOfARouteGetsTheSameAccessDecision() throws {
        let g = Self.securedGateway()
        // path, method, expected status with no key / client key / admin key
        let table: [(String, String, [Int])] = [
            ("/health", "GET", [200, 200, 200]),
            ("/api/info", "GET", [401, 200, 200]),
            ("/api/chat/models", "GET", [401, 200, 200]),
            ("/v1/models", "GET", [401, 200, 200]),
            ("/api/admin-probe", "GET", [401, 403, 200]),
            ("/api/chat/completion", "POST", [401, 400, 400]),
            ("/v1/chat/completions", "POST", [401, 400, 400]),
        ]
        for (path, method, expected) in table {
            for spell in Self.spellings {
                let spelled = spell(path)
                for (keyIndex, key) in [nil, Self.clientKey, Self.adminKey].enumerated() {
                    let headers = key.map { ["x-api-key": $0] } ?? [:]
                    let r = run(method, spelled, headers: headers, body: "{}", on: g)
                    #expect(r.status == expected[keyIndex], "\(method) \(spelled) key #\(keyIndex)")
                }
            }
        }
    }

    @Test func anUnknownOrUpperCasePathIs404ForEveryone() throws {
        let g = Self.securedGateway()
        for path in ["/nope", "/HEALTH", "/Api/info", "/v1/Models", "/health%2F"] {
            for key in [nil, Self.clientKey, Self.adminKey] {
                #expect(run("GET", path, headers: key.map { ["x-api-key": $0] } ?? [:], on: g).status == 404, "\(path)")
            }
        }
    }

    @Test func anAdminRouteWithNoAdminKeyConfiguredIs403EvenWithoutAuthRequired() throws {
        let open = Self.makeGateway()
        open.add("GET", "/api/admin-probe", access: .admin) { ctx in ctx.json(200, ["success": true]) }
        let r = run("GET", "/api/admin-probe", on: open)
        #expect(r.status == 403 && r.json?["error"]?.stringValue?.contains("No admin key") == true)
        let noAdmin = Self.securedGateway(adminKey: false)
        #expect(run("GET", "/api/admin-probe", headers: ["x-api-key": Self.clientKey], on: noAdmin).status == 403)
    }

    @Test func preflightAnd405ListTheSameMethods() throws {
        let r = run("OPTIONS", "/health/")
        #expect(r.status == 204 && r.header("Allow") == "GET, HEAD, OPTIONS")
        #expect(run("POST", "//health").header("Allow") == "GET, HEAD, OPTIONS")
    }
}

@Suite struct UsageCaptureTests {
    func record(_ c: UsageCapture, status: Int = 200, clientLeft: Bool = false) -> UsageRecord {
        c.record(requestID: "rid", key: GatewayConfig.APIKey(sha256: String(repeating: "ab", count: 32), name: "team"), client: "key:abab",
                 route: "/v1/chat/completions", status: status, clientLeft: clientLeft, startNanos: 1_000_000_000,
                 endNanos: 1_250_000_000, startUnixMs: 1_800_000_000_000)
    }

    @Test func aCompletedRequestCarriesTheUpstreamsUsage() throws {
        let c = UsageCapture(model: "kimi-k2", stream: false, promptTokens: 100, tokenBound: 10_000)
        c.usage = ["prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "cached_tokens": 100]
        let r = record(c)
        #expect(r.outcome == .completed && !r.estimated && r.promptTokens == 120 && r.completionTokens == 30 && r.cachedTokens == 100)
        #expect(r.keyName == "team" && r.keyFingerprint == String(repeating: "ab", count: 8) && r.durationMs == 250)
    }

    @Test func aStreamTheClientLeftIsEstimatedFromWhatWasRelayed() throws {
        let c = UsageCapture(model: "kimi-k2", stream: true, promptTokens: 101, tokenBound: 10_000)
        c.relayedDeltas = 17
        let r = record(c, clientLeft: true)
        #expect(r.outcome == .clientLeft && r.estimated && r.promptTokens == 101 && r.completionTokens == 17)
    }

    @Test func aStreamTheClientLeftAfterTheUsageCameIsExact() throws {
        let c = UsageCapture(model: "kimi-k2", stream: true, promptTokens: 101, tokenBound: 10_000)
        c.usage = ["prompt_tokens": 90, "completion_tokens": 12]
        let r = record(c, clientLeft: true)
        #expect(r.outcome == .clientLeft && !r.estimated && r.totalTokens == 102)
    }

    @Test func anUpstreamErrorWithoutUsageIsNotBilled() throws {
        let c = UsageCapture(model: "kimi-k2", stream: false, promptTokens: 100, tokenBound: 10_000)
        let r = record(c, status: 502)
        #expect(r.outcome == .upstreamError && !r.estimated && r.totalTokens == 0)
        let failedStream = UsageCapture(model: "kimi-k2", stream: true, promptTokens: 100, tokenBound: 10_000)
        failedStream.failed = true
        #expect(record(failedStream).outcome == .upstreamError)
    }

    @Test func anAnswerTheGatewayDroppedIsChargedItsReservationNotNothing() throws {
        // max_tokens 32768 answered in full, dropped as too large: Kimi billed it.
        let c = UsageCapture(model: "kimi-k2", stream: false, promptTokens: 10, tokenBound: 300_000)
        c.reservedTokens = 10 + 32_768
        c.answerDropped = true
        let r = record(c, status: 502)
        #expect(r.estimated && r.promptTokens == 10 && r.completionTokens == 32_768)
    }

    @Test func hostileUsageNumbersAreClampedToTheRequestsBoundAndTheRowSaysSo() throws {
        let c = UsageCapture(model: "kimi-k2", stream: false, promptTokens: 10, tokenBound: 9_000)
        c.usage = ["prompt_tokens": .number("9223372036854775807"), "completion_tokens": -5_000_000]
        let r = record(c)
        #expect(r.promptTokens == 9_000 && r.completionTokens == 0 && r.clamped && r.totalTokens == 9_000)
        #expect(UsageRecord(journalLine: Array(r.journalLine.dropLast())) == r)
    }

    @Test func theProvisionalRowAndTheFinalRowShareTheirTimeAndID() throws {
        let c = UsageCapture(model: "kimi-k2", stream: true, promptTokens: 40, tokenBound: 10_000)
        c.reservedTokens = 40 + 1024
        let p = c.provisional(requestID: "rid", key: nil, client: "10.0.0.1", route: "/v1/chat/completions", startUnixMs: 1_800_000_000_000)
        #expect(p.outcome == .interrupted && p.estimated && p.promptTokens == 40 && p.completionTokens == 1024)
        let r = record(c)
        #expect(r.recordID == p.recordID && r.at == p.at)
    }

    @Test func recordIDsSortByTimeAndNeverRepeat() throws {
        let a = UsageCapture.recordID(endUnixMs: 1_800_000_000_000)
        let b = UsageCapture.recordID(endUnixMs: 1_800_000_000_001)
        #expect(a.count == 28 && a < b && a.prefix(12) == "01a3185c5000")
        #expect(Set((0..<1000).map { _ in UsageCapture.recordID(endUnixMs: 5) }).count == 1000)
    }
}

@Suite struct JSONLogTests {
    @Test func anAccessLineAsJSONHasTheTextLinesFieldsNotesAsFieldsAndBareNotesAsFlags() throws {
        let r = Request(method: "POST", path: "/v1/chat/completions?\"x\"\n", remoteAddr: "10.0.0.7", requestID: "rid42")
        let line = AccessLog.json(request: r, status: 429, bytes: 120, nanos: 1_234_567,
                                  notes: ["model=kimi-k2", "token-limited", "attempts=2", "status=999", "a=b=c"])
        #expect(!line.contains(0x0A))
        let j = try JSON.parse(line)
        #expect(j["level"] == "access" && j["method"] == "POST" && j["status"]?.intValue == 429 && j["bytes"]?.intValue == 120)
        #expect(j["path"]?.stringValue == HeaderSafety.printable("/v1/chat/completions?\"x\"\n", max: 200))
        #expect(j["durationMs"]?.doubleValue == 1.234 && j["rid"] == "rid42" && j["ip"] == "10.0.0.7")
        #expect(j["model"] == "kimi-k2" && j["attempts"] == "2" && j["a"] == "b=c")
        // A note may not overwrite a field of the line: it stays a flag.
        #expect(j["flags"] == ["token-limited", "status=999"])
        #expect(j["time"]?.stringValue?.hasSuffix("Z") == true)
    }

    @Test func aMessageLineAsJSONEscapesWhatItCarries() throws {
        let j = try JSON.parse(Array(Log.line("error", "bad \"thing\"\n\tthere", json: true).utf8))
        #expect(j["level"] == "error" && j["msg"] == "bad \"thing\"\n\tthere")
        #expect(Log.line("info", "plain", json: false).hasSuffix(" info plain"))
    }
}
