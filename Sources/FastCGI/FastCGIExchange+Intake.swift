import CFastCGI
import KimiCore

extension FastCGIExchange {
    /// The request as the web server handed it over, for every responder in
    /// this process (the gateway and the simulator): the head from the
    /// params (RFC 3875), then `CONTENT_LENGTH` checked against
    /// `maxBodyBytes` before anything is allocated, then exactly that many
    /// body bytes. The head is there either way; a body that cannot be had
    /// (too large, a malformed length, fewer bytes than announced) comes back
    /// as the error to answer with.
    public func intake(maxBodyBytes: Int, requestID: String) -> (request: Request, refusal: GatewayError?) {
        var request = head(requestID: requestID)
        let refusal = readBody(into: &request, maxBodyBytes: maxBodyBytes)
        return (request, refusal)
    }

    /// The head: method, path (normalised), query, headers, peer.
    public func head(requestID: String) -> Request {
        Request.head(cgi: params, requestID: requestID)
    }

    /// The whole body into `request`, or the error to answer with.
    public func readBody(into request: inout Request, maxBodyBytes: Int) -> GatewayError? {
        switch ContentLength.parse(params.contentLength, cap: maxBodyBytes) {
        case let .failure(e):
            return e
        case let .success(length):
            guard let body = readBody(count: length) else { return .badRequest("Request body is shorter than its Content-Length") }
            request.body = body
            return nil
        }
    }

    /// The body left in the connection, to be read as it arrives.
    public func bodyStream(length: Int) -> RequestBodySource { FastCGIBodyStream(exchange: self, length: length) }
}

/// `length` body bytes read from libfcgi's input stream in pieces.
final class FastCGIBodyStream: RequestBodySource {
    private let exchange: FastCGIExchange
    private(set) var remaining: Int

    init(exchange: FastCGIExchange, length: Int) {
        self.exchange = exchange
        remaining = length
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard remaining > 0 else { return 0 }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let want = min(buffer.count, remaining, 1 << 20)
        let n = exchange.readSome(into: base, count: want)
        guard n > 0 else { return nil }
        remaining -= n
        return n
    }
}
