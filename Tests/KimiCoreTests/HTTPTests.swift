import Testing
@testable import KimiCore

@Suite struct ContentLengthTests {
    @Test func acceptsPlainDigitsWithinCap() throws {
        #expect(try ContentLength.parse("123", cap: 1000).get() == 123)
        #expect(try ContentLength.parse(nil, cap: 10).get() == 0)
        #expect(try ContentLength.parse("", cap: 10).get() == 0)
    }

    @Test func rejectsBodyOverLimit() throws {
        #expect(ContentLength.parse("1001", cap: 1000) == .failure(.payloadTooLarge(limit: 1000)))
        #expect(ContentLength.parse("99999999999999999999", cap: 1000).failureStatus == 400) // 20 digits: malformed
        #expect(ContentLength.parse("9999999999999999999", cap: 1000).failureStatus == 413) // overflows Int64
    }

    @Test func rejectsMalformedLengths() throws {
        for bad in ["-1", "+5", " 5", "5 ", "0x10", "1e3", "1,000", "５"] {
            #expect(ContentLength.parse(bad, cap: 1 << 20).failureStatus == 400, "\(bad)")
        }
    }
}

extension Result where Failure == GatewayError {
    var failureStatus: Int? { if case let .failure(e) = self { return e.status } else { return nil } }
}

@Suite struct RequestHeadTests {
    @Test func copiesHeadersAndSplitsTheQuery() throws {
        let r = Request.head(params: ["REQUEST_METHOD": "POST", "REQUEST_URI": "/v1/models?x=1", "HTTP_X_API_KEY": "k",
                                      "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "10.0.0.1"], requestID: "r1")
        #expect(r.method == "POST" && r.path == "/v1/models" && r.query == "x=1")
        #expect(r.header("x-api-key") == "k" && r.header("Content-Type") == "application/json")
        #expect(r.remoteAddr == "10.0.0.1" && r.face == .openAI)
    }

    @Test func paramEntriesSplitAtTheFirstEqualsAndHeadersTakeTheirHTTPNames() throws {
        var p = CGIParams()
        for entry in ["REQUEST_METHOD=POST", "QUERY_STRING=a=b&c=d", "HTTP_X_API_KEY=k=1", "HTTP_ACCEPT_ENCODING=gzip",
                      "DOCUMENT_ROOT=/srv", "HTTP_=empty", "NOEQUALS", "CONTENT_LENGTH=", "REMOTE_ADDR=10.0.0.1"] {
            var e = entry
            e.withUTF8 { p.add(entry: $0) }
        }
        #expect(p.method == "POST" && p.queryString == "a=b&c=d" && p.contentLength == "" && p.remoteAddr == "10.0.0.1")
        #expect(p.headers == ["x-api-key": "k=1", "accept-encoding": "gzip"])
        #expect(p["HTTP_X_API_KEY"] == "k=1" && p["REQUEST_METHOD"] == "POST" && p["CONTENT_LENGTH"] == "")
        #expect(p["DOCUMENT_ROOT"] == nil && p["NOEQUALS"] == nil && p["HTTP_"] == nil && p.requestURI == nil)
    }

    @Test func theUriFallsBackToScriptNameAndPathInfo() throws {
        let r = Request.head(params: ["SCRIPT_NAME": "/v1", "PATH_INFO": "/models", "QUERY_STRING": "x=1",
                                      "CONTENT_TYPE": "", "HTTP_CONTENT_TYPE": "text/plain"], requestID: "r2")
        #expect(r.method == "GET" && r.path == "/v1/models" && r.query == "x=1")
        #expect(r.header("content-type") == "text/plain")
        #expect(Request.head(params: [:], requestID: "r3").path == "/")
    }

    @Test func facesFollowThePath() throws {
        #expect(APIFace(path: "/api/info") == .app)
        #expect(APIFace(path: "/health") == .app)
        #expect(APIFace(path: "/v1/chat/completions") == .openAI)
        #expect(APIFace(path: "/v1x") == .app)
    }
}

@Suite struct ErrorRenderingTests {
    @Test func appFaceIsSuccessFalse() throws {
        let r = GatewayError.notFound("/api/x").rendered(for: .app)
        #expect(r.status == 404)
        #expect(r.body == ["success": false, "error": "Route not found: /api/x"])
    }

    @Test func openAIFaceHasMessageTypeCode() throws {
        let r = GatewayError.unauthorized().rendered(for: .openAI)
        #expect(r.status == 401)
        #expect(r.body["error"]?["type"] == "invalid_authentication_error")
        #expect(r.body["error"]?["code"] == "invalid_api_key")
        #expect(r.headers.contains { $0 == ("WWW-Authenticate", "Bearer") })
    }

    @Test func methodNotAllowedCarriesAllow() throws {
        let r = GatewayError.methodNotAllowed("PUT", allow: ["GET", "HEAD"]).rendered(for: .app)
        #expect(r.status == 405 && r.headers.contains { $0 == ("Allow", "GET, HEAD") })
    }

    @Test func rateLimitedCarriesRetryAfter() throws {
        let r = GatewayError.rateLimited(retryAfter: 7).rendered(for: .openAI)
        #expect(r.status == 429 && r.headers.contains { $0 == ("Retry-After", "7") })
        #expect(r.body["error"]?["type"] == "rate_limit_reached_error")
    }

    @Test func pathWithControlCharactersIsSanitisedInMessage() throws {
        let e = GatewayError.notFound("/a\r\nSet-Cookie: x")
        #expect(!e.message.contains("\r") && !e.message.contains("\n"))
    }
}

@Suite struct ASCIITextTests {
    @Test func writesTextAndDecimalNumbersAsStringInterpolationWould() {
        for v in [0, 7, -7, 10, 1_000_000_007, Int.max, Int.min] {
            #expect(ASCIIText.build(capacity: 40) { $0.text("n="); $0.number(v) } == "n=\(v)")
        }
        #expect(ASCIIText.build(capacity: 40) { $0.text("é\"x\""); $0.number(UInt64.max) } == "é\"x\"\(UInt64.max)")
    }

    @Test func byteBuffersTakeTextAndDecimalNumbersAsStringInterpolationWould() {
        for v in [0, 7, -7, 10, 1_000_000_007, Int.max, Int.min] {
            var b: [UInt8] = []
            b.appendUTF8("n=é")
            b.appendDecimal(v)
            #expect(String(decoding: b, as: UTF8.self) == "n=é\(v)")
        }
    }

    @Test func cutsAtTheCapacityInsteadOfWritingPastIt() {
        #expect(ASCIIText.build(capacity: 5) { $0.text("abc"); $0.number(12345) } == "abc12")
        #expect(ASCIIText.build(capacity: 0) { $0.text("abc") } == "")
    }
}
