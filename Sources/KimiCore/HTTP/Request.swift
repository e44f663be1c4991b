/// One HTTP request as the web server handed it over FastCGI (RFC 3875
/// meta-variables), copied into Swift values right after accept: libfcgi's
/// param pointers die at FCGX_Finish_r.
public struct Request: Sendable {
    public var method: String
    /// The path without the query string, as sent (not percent-decoded).
    public var path: String
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
        self.path = path
        self.query = query
        self.headers = headers
        self.remoteAddr = remoteAddr
        self.body = body
        self.requestID = requestID
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The face a path belongs to decides the error format.
    public var face: APIFace { APIFace(path: path) }
}

extension Request {
    /// Builds the request head from FastCGI params. `REQUEST_URI` is
    /// preferred over `SCRIPT_NAME`+`PATH_INFO`: nginx and lighttpd both send
    /// it unmodified.
    public static func head(params: [String: String], requestID: String) -> Request {
        let method = params["REQUEST_METHOD"] ?? "GET"
        var uri = params["REQUEST_URI"] ?? ((params["SCRIPT_NAME"] ?? "") + (params["PATH_INFO"] ?? ""))
        if uri.isEmpty { uri = "/" }
        var path = uri
        var query = params["QUERY_STRING"] ?? ""
        if let q = uri.firstIndex(of: "?") {
            path = String(uri[..<q])
            if query.isEmpty { query = String(uri[uri.index(after: q)...]) }
        }
        var headers: [String: String] = [:]
        for (k, v) in params where k.hasPrefix("HTTP_") {
            headers[String(k.dropFirst(5)).lowercased().replacingUnderscores()] = v
        }
        if let ct = params["CONTENT_TYPE"], !ct.isEmpty { headers["content-type"] = ct }
        return Request(method: method, path: path, query: query, headers: headers,
                       remoteAddr: params["REMOTE_ADDR"] ?? "", body: [], requestID: requestID)
    }
}

extension String {
    func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}

public enum APIFace: String, Sendable {
    /// `/api/*` and `/health`: `{"success":false,"error":"..."}`.
    case app
    /// `/v1/*`: OpenAI's `{"error":{"message","type","code"}}`.
    case openAI

    public init(path: String) { self = path.hasPrefix("/v1/") || path == "/v1" ? .openAI : .app }
}
