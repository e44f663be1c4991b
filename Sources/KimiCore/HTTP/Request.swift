/// One HTTP request as the web server handed it over FastCGI (RFC 3875
/// meta-variables), copied into Swift values right after accept: libfcgi's
/// param pointers die at FCGX_Finish_r.
public struct Request: Sendable {
    public var method: String
    /// The path without the query string, normalised once (`RoutePath`):
    /// what routing and every route policy see.
    public var path: String
    /// The path as sent, for the access log.
    public var rawPath: String
    public var query: String
    /// Header names lowercased with `-` (from `HTTP_X_API_KEY` → `x-api-key`).
    public var headers: [String: String]
    public var remoteAddr: String
    public var body: [UInt8]
    public var requestID: String

    public init(method: String, path: String, query: String = "", headers: [String: String] = [:],
                remoteAddr: String = "127.0.0.1", body: [UInt8] = [], requestID: String = "test")
    {
        self.method = method
        self.path = RoutePath.normalise(path)
        self.rawPath = path
        self.query = query
        self.headers = headers
        self.remoteAddr = remoteAddr
        self.body = body
        self.requestID = requestID
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The face a request belongs to when no route declares one (an
    /// unknown path, a refusal before routing): by its path, and for the
    /// one route both faces share, `GET /v1/models`, by `anthropic-version`.
    public var face: APIFace { APIFace(path: path, anthropicVersion: headers["anthropic-version"] != nil) }
}

extension Request {
    /// Builds the request head from FastCGI params. `REQUEST_URI` is
    /// preferred over `SCRIPT_NAME`+`PATH_INFO`: nginx and lighttpd both send
    /// it unmodified.
    public static func head(cgi: CGIParams, requestID: String) -> Request {
        let method = cgi.method ?? "GET"
        var uri = cgi.requestURI ?? ((cgi.scriptName ?? "") + (cgi.pathInfo ?? ""))
        if uri.isEmpty { uri = "/" }
        var path = uri
        var query = cgi.queryString ?? ""
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(uri[..<q])
            if query.isEmpty { query = String(uri[uri.index(after: q)...]) }
        }
        var headers = cgi.headers
        if let ct = cgi.contentType, !ct.isEmpty { headers["content-type"] = ct }
        return Request(method: method, path: path, query: query, headers: headers,
                       remoteAddr: cgi.remoteAddr ?? "", body: [], requestID: requestID)
    }

    /// The same from a dictionary of params (tests, tools).
    public static func head(params: [String: String], requestID: String) -> Request {
        head(cgi: CGIParams(params), requestID: requestID)
    }
}

/// An API face: the dialect a route speaks — its error format, its stream
/// events. Declared with each route (`Gateway.registerRoutes`); found from
/// the path for requests no route matched.
public enum APIFace: String, Sendable {
    /// `/api/*` and `/health`: `{"success":false,"error":"..."}`.
    case app
    /// `/v1/*`: OpenAI's `{"error":{"message","type","code"}}`.
    case openAI
    /// `/v1/messages*`: Anthropic's `{"type":"error","error":{"type","message"}}` (`AnthropicMessages`).
    case anthropic

    public init(path: String, anthropicVersion: Bool = false) {
        if path.hasPrefix("/v1/messages") && (path.count == 12 || path.hasPrefix("/v1/messages/")) { self = .anthropic; return }
        if anthropicVersion, path == "/v1/models" { self = .anthropic; return }
        self = path.hasPrefix("/v1/") || path == "/v1" ? .openAI : .app
    }
}
