import CCurl
import KimiCore

/// One plain HTTP POST with its own libcurl handle: the span exporter's
/// (OTLP/HTTP). Its thread owns it; nothing here touches the upstream
/// clients of the worker threads. The answer's body is read and dropped.
public final class OTLPPost {
    private let handle: UnsafeMutableRawPointer

    public enum Outcome: Equatable {
        case status(Int)
        case failed(String)
    }

    public init() {
        UpstreamClient.initialize()
        handle = curl_easy_init()!
        kimi_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        kimi_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        kimi_curl_set_long(handle, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        kimi_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        kimi_curl_set_write_cb(handle, { _, size, n, _ in size * n })
        kimi_curl_set_long(handle, CURLOPT_POST, 1)
    }

    deinit { curl_easy_cleanup(handle) }

    /// POSTs `body` to `url` with `headers` (`Name: value` lines), giving up
    /// after `timeoutMs` in all (connect included).
    public func send(url: String, headers: [String], body: [UInt8], timeoutMs: Int) -> Outcome {
        var list: UnsafeMutablePointer<curl_slist>?
        for h in headers + ["Expect:", "User-Agent: kimi-gateway"] { list = curl_slist_append(list, h) }
        defer { curl_slist_free_all(list) }
        kimi_curl_set_str(handle, CURLOPT_URL, url)
        kimi_curl_set_slist(handle, CURLOPT_HTTPHEADER, list)
        kimi_curl_set_long(handle, CURLOPT_TIMEOUT_MS, timeoutMs)
        kimi_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, timeoutMs)
        kimi_curl_set_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
        let rc: CURLcode = body.withUnsafeBufferPointer { buf in
            kimi_curl_set_ptr(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: buf.baseAddress ?? UnsafePointer(bitPattern: 1)!))
            return curl_easy_perform(handle)
        }
        guard rc == CURLE_OK else { return .failed(String(cString: curl_easy_strerror(rc))) }
        return .status(Int(kimi_curl_response_code(handle)))
    }
}
