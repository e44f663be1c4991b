import CCurl
import Glibc
import KimiCore

/// What one upstream call needs.
public struct UpstreamRequest {
    public var method: String
    public var url: String
    public var bearer: String
    public var body: [UInt8]
    public var accept: String
    public var connectTimeoutMs: Int
    /// Longest silence tolerated while waiting for bytes.
    public var idleTimeoutMs: Int
    /// Longest whole transfer, however steadily bytes arrive (a 1-byte drip
    /// never trips the idle timeout). 0 = none.
    public var totalTimeoutMs = 0
    /// No byte of the answer within this long from the start: the attempt
    /// failed with `.firstByteTimeout` (retried by the caller). 0 = none.
    public var firstByteTimeoutMs = 0
    /// A CA bundle for TLS verification; empty = the system store.
    public var caFile = ""
    /// Sent as `X-Request-Id`, so one id names the request at the client,
    /// in our log and upstream. Empty: none.
    public var requestID = ""
    /// Sent as `traceparent` (W3C Trace Context): the attempt's client
    /// span, so the upstream's trace continues ours. Empty: none.
    public var traceparent = ""
    /// A body read as it is sent (an upload passed through from the
    /// client), instead of `body`: `bodyLength` bytes, never held whole.
    public var bodyStream: UpstreamBodyStream?
    public var bodyLength = 0
    /// The body's type when it is not JSON (a multipart upload's, boundary included).
    public var contentType: String?
    /// More request headers, each `Name: value` (the Anthropic face's
    /// `x-api-key`, `anthropic-version`, `anthropic-beta`…); a line that is
    /// not header-safe is left out.
    public var extraHeaders: [String] = []

    public init(method: String, url: String, bearer: String, body: [UInt8] = [], accept: String = "application/json",
                connectTimeoutMs: Int, idleTimeoutMs: Int)
    {
        self.method = method
        self.url = url
        self.bearer = bearer
        self.body = body
        self.accept = accept
        self.connectTimeoutMs = connectTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
    }
}

/// A request body produced while it is sent (curl's read callback).
public protocol UpstreamBodyStream: AnyObject {
    /// Up to `buffer.count` bytes; 0 at the end; nil to abort the transfer
    /// (the client's own body broke off).
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int?
}

/// Receives the response as it arrives. Any callback returning false aborts
/// the transfer: curl closes the upstream connection, so the Kimi API stops
/// generating (and billing).
public protocol UpstreamReceiver: AnyObject {
    /// Status and lowercased headers, once the header block is complete.
    func upstreamHead(status: Int, headers: [String: String]) -> Bool
    func upstreamData(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// Called at least once a second while the transfer runs (keep-alives,
    /// noticing a gone client during upstream silence).
    func upstreamTick() -> Bool
}

/// What carries an upstream request: curl (`UpstreamClient`) in the
/// product; a scripted transport in unit tests, so the retry loop and the
/// relays run against any sequence of answers and failures without a
/// socket (async-http-client's `MockRequestExecutor` is the model).
public protocol UpstreamTransport: AnyObject {
    /// One transfer, its head and bytes handed to `receiver` as they come.
    func perform(_ req: UpstreamRequest, receiver: UpstreamReceiver) -> UpstreamResult
    /// The HTTP version of the last transfer (2 for HTTP/2; 0 unknown), for the log.
    var lastHTTPVersion: Int { get }
}

/// The HTTP version curl used for the last transfer (2 for HTTP/2), for logs and tests.
extension UpstreamClient: UpstreamTransport {
    public var lastHTTPVersion: Int { Int(kimi_curl_http_version(handle)) }
}

public enum UpstreamResult: Equatable {
    case completed
    /// A receiver callback said stop (the client left).
    case abortedByReceiver
    case failed(UpstreamErrorMapping.TransportFailure)
}

/// A libcurl easy handle per worker thread, reused across requests so the
/// TLS connection to the Kimi API stays alive between them.
public final class UpstreamClient {
    private let handle: UnsafeMutableRawPointer
    fileprivate var receiver: UpstreamReceiver?
    fileprivate var headers: [String: String] = [:]
    fileprivate var headDelivered = false
    fileprivate var aborted = false
    fileprivate var idleTimedOut = false
    fileprivate var totalTimedOut = false
    fileprivate var firstByteTimedOut = false
    fileprivate var sawByte = false
    fileprivate var firstByteDeadline: UInt64 = .max
    fileprivate var deadline: UInt64 = .max
    fileprivate var lastActivity: UInt64 = 0
    fileprivate var idleTimeoutNanos: UInt64 = 0
    fileprivate var bodyStream: UpstreamBodyStream?

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in
            guard let p else { return }
            Unmanaged<UpstreamClient>.fromOpaque(p).release()
        }
        return k
    }()

    /// Call once before threads start (curl_global_init is not thread-safe).
    public static func initialize() { _ = globalInit }

    public static func forCurrentThread() -> UpstreamClient {
        _ = globalInit
        if let p = pthread_getspecific(key) { return Unmanaged<UpstreamClient>.fromOpaque(p).takeUnretainedValue() }
        let c = UpstreamClient()
        pthread_setspecific(key, Unmanaged.passRetained(c).toOpaque())
        return c
    }

    /// The request header list, rebuilt only when the key or Accept changes.
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var headerListBearer = ""
    private var headerListAccept = ""
    private var caFileSet = ""

    private init() {
        handle = curl_easy_init()!
        // Options that never change are set once per handle (a reset and
        // full set-up per request cost more than the transfer itself).
        let me = Unmanaged.passUnretained(self).toOpaque()
        kimi_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        kimi_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        kimi_curl_set_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        kimi_curl_set_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        kimi_curl_set_long(handle, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        kimi_curl_set_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        kimi_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        // The body is ours to pass through untouched: no decoding.
        kimi_curl_set_str(handle, CURLOPT_ACCEPT_ENCODING, nil)
        kimi_curl_set_write_cb(handle, writeCallback)
        kimi_curl_set_ptr(handle, CURLOPT_WRITEDATA, me)
        kimi_curl_set_header_cb(handle, headerCallback)
        kimi_curl_set_ptr(handle, CURLOPT_HEADERDATA, me)
        kimi_curl_set_xfer_cb(handle, xferCallback)
        kimi_curl_set_read_cb(handle, readCallback)
        kimi_curl_set_ptr(handle, CURLOPT_READDATA, me)
        kimi_curl_set_ptr(handle, CURLOPT_XFERINFODATA, me)
        kimi_curl_set_long(handle, CURLOPT_NOPROGRESS, 0)
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headerList)
    }

    private func headers(bearer: String, accept: String) -> UnsafeMutablePointer<curl_slist>? {
        if headerList == nil || bearer != headerListBearer || accept != headerListAccept {
            curl_slist_free_all(headerList)
            headerList = nil
            for h in ["Authorization: Bearer \(bearer)", "Content-Type: application/json", "Accept: \(accept)", "Expect:", "User-Agent: kimi-gateway"] {
                headerList = curl_slist_append(headerList, h)
            }
            (headerListBearer, headerListAccept) = (bearer, accept)
        }
        return headerList
    }

    public func perform(_ req: UpstreamRequest, receiver: UpstreamReceiver) -> UpstreamResult {
        self.receiver = receiver
        headers = [:]
        headDelivered = false
        aborted = false
        idleTimedOut = false
        totalTimedOut = false
        firstByteTimedOut = false
        sawByte = false
        lastActivity = Clock.monotonicNanos()
        firstByteDeadline = req.firstByteTimeoutMs > 0 ? lastActivity &+ UInt64(req.firstByteTimeoutMs) * 1_000_000 : .max
        deadline = req.totalTimeoutMs > 0 ? lastActivity &+ UInt64(req.totalTimeoutMs) * 1_000_000 : .max
        idleTimeoutNanos = UInt64(req.idleTimeoutMs) * 1_000_000
        defer { self.receiver = nil }

        kimi_curl_set_str(handle, CURLOPT_URL, req.url)
        // The request id goes in one node of its own in front of the cached
        // list (linked for this transfer, unlinked before it is freed). A
        // body of another type (uploads, rare) gets a list of its own.
        var ownList: UnsafeMutablePointer<curl_slist>?
        if req.contentType != nil || !req.extraHeaders.isEmpty {
            let type = req.contentType.flatMap { HeaderSafety.isSafe($0) ? $0 : nil } ?? "application/json"
            for h in ["Authorization: Bearer \(req.bearer)", "Content-Type: \(type)", "Accept: \(req.accept)", "Expect:", "User-Agent: kimi-gateway"] {
                ownList = curl_slist_append(ownList, h)
            }
            for h in req.extraHeaders where HeaderSafety.isSafe(h) { ownList = curl_slist_append(ownList, h) }
        }
        defer { curl_slist_free_all(ownList) }
        let base = ownList ?? headers(bearer: req.bearer, accept: req.accept)
        // Likewise `traceparent` (built by the gateway, always header-safe), in front of that.
        var idNode: UnsafeMutablePointer<curl_slist>?
        if !req.requestID.isEmpty, HeaderSafety.isSafe(req.requestID) {
            idNode = curl_slist_append(nil, "X-Request-Id: \(req.requestID)")
            idNode?.pointee.next = base
        }
        var traceNode: UnsafeMutablePointer<curl_slist>?
        if !req.traceparent.isEmpty {
            traceNode = curl_slist_append(nil, "traceparent: \(req.traceparent)")
            traceNode?.pointee.next = idNode ?? base
        }
        defer {
            for node in [traceNode, idNode] {
                guard let node else { continue }
                node.pointee.next = nil
                curl_slist_free_all(node)
            }
        }
        kimi_curl_set_slist(handle, CURLOPT_HTTPHEADER, traceNode ?? idNode ?? base)
        kimi_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, req.connectTimeoutMs)
        if req.caFile != caFileSet {
            // Verification stays on either way; only the trust store changes.
            kimi_curl_set_str(handle, CURLOPT_CAINFO, req.caFile.isEmpty ? nil : req.caFile)
            caFileSet = req.caFile
        }
        kimi_curl_set_str(handle, CURLOPT_CUSTOMREQUEST, nil)
        bodyStream = req.bodyStream
        defer { bodyStream = nil }
        if req.method == "POST" {
            kimi_curl_set_long(handle, CURLOPT_POST, 1)
            kimi_curl_set_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(req.bodyStream == nil ? req.body.count : req.bodyLength))
        } else {
            kimi_curl_set_long(handle, CURLOPT_HTTPGET, 1)
            if req.method != "GET" { kimi_curl_set_str(handle, CURLOPT_CUSTOMREQUEST, req.method) }
        }
        let rc: CURLcode = req.body.withUnsafeBufferPointer { buf in
            if req.method == "POST", req.bodyStream != nil {
                // No POSTFIELDS: curl calls the read callback for the body.
                kimi_curl_set_ptr(handle, CURLOPT_POSTFIELDS, nil)
            } else if req.method == "POST" {
                // COPYPOSTFIELDS would copy; the buffer outlives the transfer.
                kimi_curl_set_ptr(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: buf.baseAddress ?? UnsafePointer(bitPattern: 1)!))
            }
            return curl_easy_perform(handle)
        }
        if rc == CURLE_OK {
            if !headDelivered { deliverHead() }
            return .completed
        }
        if aborted { return .abortedByReceiver }
        if firstByteTimedOut { return .failed(.firstByteTimeout("no answer within \(req.firstByteTimeoutMs) ms (upstream.firstByteTimeoutMs)")) }
        if idleTimedOut { return .failed(sawByte ? .timeout("no data for \(req.idleTimeoutMs) ms") : .firstByteTimeout("no answer within \(req.idleTimeoutMs) ms")) }
        if totalTimedOut { return .failed(.timeout("the answer took longer than \(req.totalTimeoutMs) ms (upstream.totalTimeoutMs)")) }
        let text = String(cString: curl_easy_strerror(rc))
        switch rc {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SSL_CONNECT_ERROR,
             CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
            return .failed(.connect(text))
        case CURLE_OPERATION_TIMEDOUT:
            return .failed(.timeout(text))
        default:
            return .failed(.other(text))
        }
    }

    fileprivate func deliverHead() {
        headDelivered = true
        if let r = receiver, !r.upstreamHead(status: Int(kimi_curl_response_code(handle)), headers: headers) { aborted = true }
    }

    /// The upstream headers the gateway acts on; the rest are not copied.
    static let keptNames = ["retry-after", "content-type", "x-request-id", "content-length"]
    static let keptHeaders: [[UInt8]] = keptNames.map { Array($0.utf8) }

    /// Which kept header a line's name is (ASCII case-insensitive, RFC 9110
    /// §5.1), on raw bytes: the generic zip/allSatisfy match and a String
    /// for the name per line were ~2,000 instructions a header line
    /// (callgrind).
    static func keptIndex(_ name: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        for (i, k) in keptHeaders.enumerated() where k.count == n {
            let same = k.withUnsafeBufferPointer { kb -> Bool in
                for j in 0..<n {
                    let c = name[j]
                    if kb[j] != (c >= 0x41 && c <= 0x5A ? c | 0x20 : c) { return false }
                }
                return true
            }
            if same { return i }
        }
        return nil
    }

    fileprivate func header(_ line: UnsafeBufferPointer<UInt8>) {
        lastActivity = Clock.monotonicNanos()
        sawByte = true
        guard let base = line.baseAddress else { return }
        // A new status line (after a 1xx) starts a new header block.
        if line.count > 5, line[0] == 0x48, line[1] == 0x54, line[2] == 0x54, line[3] == 0x50, line[4] == 0x2F { headers = [:]; return }
        if line.count <= 2 {
            let code = Int(kimi_curl_response_code(handle))
            if code >= 200 { deliverHead() }
            return
        }
        guard let found = memchr(base, 0x3A, line.count) else { return }
        let colon = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        guard let kept = Self.keptIndex(base, colon) else { return }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 || line[end - 1] == 0x0D || line[end - 1] == 0x0A { end -= 1 }
        headers[Self.keptNames[kept]] = String(decoding: UnsafeBufferPointer(rebasing: line[start..<end]), as: UTF8.self)
    }
}

private let writeCallback: kimi_curl_data_cb = { ptr, size, n, ud in
    let c = Unmanaged<UpstreamClient>.fromOpaque(ud!).takeUnretainedValue()
    let count = size * n
    c.lastActivity = Clock.monotonicNanos()
    if !c.headDelivered { c.deliverHead() }
    if c.aborted { return 0 }
    guard let r = c.receiver, r.upstreamData(UnsafeRawBufferPointer(start: ptr, count: count)) else {
        c.aborted = true
        return 0
    }
    return count
}

private let readCallback: kimi_curl_data_cb = { ptr, size, n, ud in
    let c = Unmanaged<UpstreamClient>.fromOpaque(ud!).takeUnretainedValue()
    guard let stream = c.bodyStream, let ptr else { return 0 }
    // Sending is activity: a slow client upload is not an idle upstream.
    c.lastActivity = Clock.monotonicNanos()
    guard let got = stream.read(into: UnsafeMutableRawBufferPointer(start: ptr, count: size * n)) else {
        c.aborted = true
        return kimi_curl_readfunc_abort
    }
    return got
}

private let headerCallback: kimi_curl_data_cb = { ptr, size, n, ud in
    let c = Unmanaged<UpstreamClient>.fromOpaque(ud!).takeUnretainedValue()
    let count = size * n
    ptr!.withMemoryRebound(to: UInt8.self, capacity: count) { c.header(UnsafeBufferPointer(start: $0, count: count)) }
    return c.aborted ? 0 : count
}

private let xferCallback: kimi_curl_xfer_cb = { ud, _, _, _, _ in
    let c = Unmanaged<UpstreamClient>.fromOpaque(ud!).takeUnretainedValue()
    if c.aborted { return 1 }
    let now = Clock.monotonicNanos()
    if now &- c.lastActivity > c.idleTimeoutNanos {
        c.idleTimedOut = true
        return 1
    }
    if !c.sawByte, now > c.firstByteDeadline {
        c.firstByteTimedOut = true
        return 1
    }
    if now > c.deadline {
        c.totalTimedOut = true
        return 1
    }
    if let r = c.receiver, !r.upstreamTick() {
        c.aborted = true
        return 1
    }
    return 0
}

