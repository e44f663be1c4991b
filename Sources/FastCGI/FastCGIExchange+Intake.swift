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
        var request = Request.head(params: params, requestID: requestID)
        switch ContentLength.parse(params["CONTENT_LENGTH"], cap: maxBodyBytes) {
        case let .failure(e):
            return (request, e)
        case let .success(length):
            guard let body = readBody(count: length) else {
                return (request, .badRequest("Request body is shorter than its Content-Length"))
            }
            request.body = body
            return (request, nil)
        }
    }
}
