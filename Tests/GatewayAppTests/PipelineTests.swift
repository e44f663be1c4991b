import Glibc
import Testing
@testable import GatewayApp
@testable import KimiCore

/// The request pipeline driven without sockets: `Gateway.dispatch` with a
/// `BufferedResponse`.
@Suite struct PipelineTests {
    let gateway: Gateway = {
        // A private limiter table: the machine's default one would carry
        // quotas from earlier runs (100 per 15 min) into this one.
        var dir = Array("/tmp/kimi-pipeline-XXXXXX".utf8CString)
        let file = String(cString: mkdtemp(&dir)!) + "/ratelimit.bin"
        let cache = try! ConfigCache(source: ConfigSource(path: nil, processEnv: ["RATE_LIMIT_FILE": file]))
        return Gateway(configCache: cache, services: Services())
    }()

    func run(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "") -> BufferedResponse {
        let out = BufferedResponse()
        let req = Request(method: method, path: path, headers: headers, body: Array(body.utf8))
        gateway.dispatch(RequestContext(request: req, writer: out, config: gateway.configCache.current()))
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
        let g: Gateway = {
            // A private limiter table: the machine's default one would carry
        // quotas from earlier runs (100 per 15 min) into this one.
        var dir = Array("/tmp/kimi-pipeline-XXXXXX".utf8CString)
        let file = String(cString: mkdtemp(&dir)!) + "/ratelimit.bin"
        let cache = try! ConfigCache(source: ConfigSource(path: nil, processEnv: ["RATE_LIMIT_FILE": file]))
            return Gateway(configCache: cache, services: Services())
        }()
        g.add("GET", "/api/boom") { _ in throw Boom() }
        g.add("GET", "/v1/boom") { _ in throw Boom() }
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
}
