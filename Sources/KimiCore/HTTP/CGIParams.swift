import Glibc

/// The FastCGI params a responder reads (RFC 3875 §4.1 meta-variables),
/// taken from libfcgi's `NAME=value` entries on bytes as they are copied:
/// the CGI variables into fields, every `HTTP_*` variable straight into a
/// header under its HTTP name (`HTTP_X_API_KEY` → `x-api-key`, §4.1.18).
/// nginx's other params (DOCUMENT_ROOT, SERVER_PORT, ...) are skipped
/// without allocating.
///
/// Copying every wanted param into a `[String: String]` and then building
/// the headers from that dictionary cost ~33,000 instructions a request,
/// 12 % of a relayed completion and a third of `/health` (callgrind, one
/// worker, 2,000 requests): a String per name, two hashed inserts per
/// header, and a second pass to rename them.
public struct CGIParams: Sendable {
    public private(set) var method: String?
    public private(set) var requestURI: String?
    public private(set) var queryString: String?
    public private(set) var contentLength: String?
    public private(set) var contentType: String?
    public private(set) var remoteAddr: String?
    public private(set) var scriptName: String?
    public private(set) var pathInfo: String?
    /// Header names lowercased with `-`.
    public private(set) var headers: [String: String] = [:]

    /// Room for a browser's headers at once (growing from empty rehashed
    /// at 1, 2, 4 and 8 entries).
    public init() { headers.reserveCapacity(16) }

    /// From a dictionary of params as a web server would send them (tests,
    /// tools); the same rules as entries read from libfcgi.
    public init(_ params: [String: String]) {
        self.init()
        for (name, value) in params {
            var name = name, value = value
            name.withUTF8 { n in value.withUTF8 { v in add(name: n, value: v) } }
        }
    }

    /// One `NAME=value` entry (the first `=` splits; an entry without one is ignored).
    public mutating func add(entry: UnsafeBufferPointer<UInt8>) {
        guard let base = entry.baseAddress, let eq = memchr(base, 0x3D, entry.count) else { return }
        let n = base.distance(to: eq.assumingMemoryBound(to: UInt8.self))
        add(name: UnsafeBufferPointer(start: base, count: n), value: UnsafeBufferPointer(start: base + n + 1, count: entry.count - n - 1))
    }

    public mutating func add(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        if name.count > 5, name[0] == 0x48, name[1] == 0x54, name[2] == 0x54, name[3] == 0x50, name[4] == 0x5F { // HTTP_
            headers[Self.headerName(fromParam: name)] = String(decoding: value, as: UTF8.self)
            return
        }
        guard let field = Self.field(name) else { return }
        let v = String(decoding: value, as: UTF8.self)
        switch field {
        case .method: method = v
        case .requestURI: requestURI = v
        case .queryString: queryString = v
        case .contentLength: contentLength = v
        case .contentType: contentType = v
        case .remoteAddr: remoteAddr = v
        case .scriptName: scriptName = v
        case .pathInfo: pathInfo = v
        }
    }

    /// A param by its CGI name (`CONTENT_LENGTH`, `HTTP_X_REQUEST_ID`).
    public subscript(name: String) -> String? {
        var name = name
        return name.withUTF8 { n -> String? in
            if n.count > 5, n.starts(with: "HTTP_".utf8) { return headers[Self.headerName(fromParam: n)] }
            switch Self.field(n) {
            case .method: return method
            case .requestURI: return requestURI
            case .queryString: return queryString
            case .contentLength: return contentLength
            case .contentType: return contentType
            case .remoteAddr: return remoteAddr
            case .scriptName: return scriptName
            case .pathInfo: return pathInfo
            case nil: return nil
            }
        }
    }

    enum Field: CaseIterable {
        case method, requestURI, queryString, contentLength, contentType, remoteAddr, scriptName, pathInfo

        var name: StaticString {
            switch self {
            case .method: "REQUEST_METHOD"
            case .requestURI: "REQUEST_URI"
            case .queryString: "QUERY_STRING"
            case .contentLength: "CONTENT_LENGTH"
            case .contentType: "CONTENT_TYPE"
            case .remoteAddr: "REMOTE_ADDR"
            case .scriptName: "SCRIPT_NAME"
            case .pathInfo: "PATH_INFO"
            }
        }
    }

    static func field(_ name: UnsafeBufferPointer<UInt8>) -> Field? {
        guard let base = name.baseAddress else { return nil }
        for f in Field.allCases {
            let want = f.name
            if want.utf8CodeUnitCount == name.count, memcmp(base, want.utf8Start, name.count) == 0 { return f }
        }
        return nil
    }

    /// `HTTP_X_API_KEY` → `x-api-key`, on bytes.
    static func headerName(fromParam k: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: k.count - 5) { out in
            for i in 5..<k.count {
                let b = k[i]
                out[i - 5] = b == 0x5F ? 0x2D : (b >= 0x41 && b <= 0x5A ? b | 0x20 : b)
            }
            return k.count - 5
        }
    }
}
