import Testing
@testable import KimiCore

@Suite struct RoutePathTests {
    @Test(arguments: [
        ("/health", "/health"),
        ("/", "/"),
        ("", "/"),
        ("/health/", "/health"),
        ("//health", "/health"),
        ("/health//", "/health"),
        ("/v1//chat/completions", "/v1/chat/completions"),
        ("/./health", "/health"),
        ("/api/../health", "/health"),
        ("/api/%2e%2e/health", "/health"),
        ("/api/%2E%2E/health", "/health"),
        ("/%2e%2e/%2e%2e/health", "/health"), // clamped at the root (RFC 3986 §5.2.4)
        ("/../health", "/health"),
        ("/h%65alth", "/health"), // an unreserved letter, percent-encoded
        ("/api/chat/..", "/api"),
        ("/api/chat/.", "/api/chat"),
        ("health", "/health"),
    ])
    func normalisesToOneForm(raw: String, expected: String) {
        #expect(RoutePath.normalise(raw) == expected)
    }

    @Test(arguments: [
        "/HEALTH", // paths are case-sensitive
        "/health%2Fx", // an encoded slash is no separator
        "/a%20b", // a reserved or other byte stays encoded
        "/.well-known", "/a..b", "/...", "/a%25zz",
    ])
    func leavesEverythingElseAsSent(raw: String) {
        #expect(RoutePath.normalise(raw) == raw)
    }

    @Test func aStrayPercentIsEscapedSoTheFormIsStable() {
        #expect(RoutePath.normalise("/a%zz") == "/a%25zz")
        #expect(RoutePath.normalise("/a%2") == "/a%252")
        // Found by fuzzing: decoding "%41" must not complete "%4" into a new escape.
        let once = RoutePath.normalise("/(%4%41/a")
        #expect(once == "/(%254A/a" && RoutePath.normalise(once) == once)
        #expect(RoutePath.normalise("/api/%2%65%2%65/health") == "/api/%252e%252e/health")
    }

    @Test func theFastPathAgreesWithTheSlowOne() {
        for raw in ["/health", "/v1/chat/completions", "/a/b.c/d", "/...", "/a..", "/.a", "/a/.b/"] {
            let slow = RoutePath.normalise("/x/.." + raw)
            #expect(RoutePath.normalise(raw) == slow, "\(raw)")
        }
    }
}

@Suite struct RouterTests {
    var router: Router<String> {
        var r = Router<String>()
        r.add("GET", "/health", access: .open, "health")
        r.add("POST", "/v1/chat/completions", access: .client, "chat")
        r.add("GET", "/admin/usage", access: .admin, "usage")
        return r
    }

    @Test func unknownPathIsNotFound() throws {
        guard case .notFound = router.match(method: "GET", path: "/nope") else { Issue.record("expected notFound"); return }
    }

    @Test func wrongMethodListsAllowed() throws {
        guard case let .methodNotAllowed(allow) = router.match(method: "GET", path: "/v1/chat/completions") else {
            Issue.record("expected 405"); return
        }
        #expect(allow == ["POST", "OPTIONS"])
        #expect(router.allow(path: "/health") == ["GET", "HEAD", "OPTIONS"])
        #expect(router.allow(path: "/nope") == [])
    }

    @Test func headFallsBackToGet() throws {
        guard case let .found(r, _) = router.match(method: "HEAD", path: "/health") else { Issue.record("expected found"); return }
        #expect(r.handler == "health" && r.access == .open)
    }

    @Test func patternSegmentsMatchOneIDSegment() throws {
        var r = Router<String>()
        r.add("GET", "/v1/files", access: .client, "list")
        r.add("GET", "/v1/files/{id}", access: .client, "get")
        r.add("DELETE", "/v1/files/{id}", access: .client, "delete")
        r.add("GET", "/v1/files/{id}/content", access: .client, "content")
        guard case let .found(get, p) = r.match(method: "GET", path: "/v1/files/cn-abc_1.2") else { Issue.record("get"); return }
        #expect(get.handler == "get" && p == ["id": "cn-abc_1.2"])
        guard case let .found(content, p2) = r.match(method: "GET", path: "/v1/files/x9/content") else { Issue.record("content"); return }
        #expect(content.handler == "content" && p2 == ["id": "x9"])
        guard case .found(let list, _) = r.match(method: "GET", path: "/v1/files") else { Issue.record("list"); return }
        #expect(list.handler == "list")
        #expect(r.allow(path: "/v1/files/x9") == ["GET", "DELETE", "HEAD", "OPTIONS"])
        for bad in ["/v1/files/a%2Fb", "/v1/files/a b", "/v1/files/x9/other", "/v1/files/" + String(repeating: "a", count: 129)] {
            guard case .notFound = r.match(method: "GET", path: Request(method: "GET", path: bad).path) else { Issue.record("\(bad)"); continue }
        }
    }

    /// The defect of issue #10: every spelling of a path that reaches a route
    /// carries that route's access, because the request path is normalised once.
    @Test(arguments: ["exact", "trailing slash", "double slash", "dot-dot", "encoded dot-dot", "query"])
    func everySpellingReachesTheSameRouteWithTheSameAccess(variant: String) throws {
        for (path, access) in [("/health", Access.open), ("/v1/chat/completions", .client), ("/admin/usage", .admin)] {
            let spelled = switch variant {
            case "trailing slash": path + "/"
            case "double slash": "/" + path
            case "dot-dot": "/x/.." + path
            case "encoded dot-dot": "/x/%2e%2E" + path
            case "query": path + "?q=/../x"
            default: path
            }
            let request = Request.head(params: ["REQUEST_URI": spelled, "REQUEST_METHOD": "GET"], requestID: "t")
            #expect(router.anyRoute(path: request.path)?.access == access, "\(spelled)")
            #expect(request.path == path)
        }
        #expect(router.anyRoute(path: Request(method: "GET", path: "/HEALTH").path) == nil)
    }
}

@Suite struct URLQueryTests {
    @Test func firstValueDecoded() {
        #expect(URLQuery.value("after", in: "limit=2&after=cn%2Dx+y&after=z") == "cn-x y")
        #expect(URLQuery.value("limit", in: "limit&x=1") == "")
        #expect(URLQuery.value("nope", in: "a=1") == nil)
        #expect(URLQuery.value("a", in: "a=%zz") == nil)
    }
}
