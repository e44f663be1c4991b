import Glibc
/// Where a handler writes its response. The FastCGI layer implements it over
/// libfcgi streams; tests use `BufferedResponse`.
public protocol ResponseWriter: AnyObject {
    /// Sends the status line and headers. Must be called once, before any body.
    func writeHead(status: Int, headers: [(String, String)])
    /// Appends body bytes (buffered). Returns false once the client is gone.
    @discardableResult func write(_ bytes: [UInt8]) -> Bool
    /// Pushes everything buffered to the web server. Returns false when the
    /// client is gone (the web server closed the FastCGI connection).
    @discardableResult func flush() -> Bool
    var headWritten: Bool { get }
    var clientGone: Bool { get }
    /// Waits up to `milliseconds` (a retry's backoff) and returns early,
    /// false, when the client leaves meanwhile (the web server closes the
    /// connection); true after the whole wait.
    func waitWhileConnected(milliseconds: Int) -> Bool
}

extension ResponseWriter {
    @discardableResult public func write(_ s: String) -> Bool { write(Array(s.utf8)) }

    /// A whole response in one call.
    public func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        var h = headers
        h.append(("Content-Length", String(body.count)))
        writeHead(status: status, headers: h)
        if !body.isEmpty { write(body) }
    }

    public func respondJSON(status: Int, _ json: JSON, headers: [(String, String)] = []) {
        respond(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers,
                body: json.serializedBytes())
    }
}

/// An in-memory response for unit tests and for composing responses.
public final class BufferedResponse: ResponseWriter {
    public private(set) var status = 0
    public private(set) var headers: [(String, String)] = []
    public private(set) var body: [UInt8] = []
    public private(set) var headWritten = false
    public var clientGone = false

    public init() {}
    public func writeHead(status: Int, headers: [(String, String)]) {
        precondition(!headWritten, "head written twice")
        self.status = status
        self.headers = headers
        headWritten = true
    }
    public func write(_ bytes: [UInt8]) -> Bool { body += bytes; return !clientGone }
    public func flush() -> Bool { !clientGone }
    public func waitWhileConnected(milliseconds: Int) -> Bool {
        if milliseconds > 0, !clientGone { usleep(useconds_t(milliseconds) * 1000) }
        return !clientGone
    }

    public func header(_ name: String) -> String? {
        headers.first(where: { $0.0.lowercased() == name.lowercased() })?.1
    }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    public var json: JSON? { try? JSON.parse(body) }
}
