/// How a route takes its request body, declared with the route
/// (`Router.add(..., body:)`).
public enum BodyPolicy: Sendable, Equatable {
    /// Read whole before the handler runs, capped by `server.maxBodyBytes`
    /// (1 MiB): every JSON route.
    case buffered
    /// Left in the connection for the handler to read as it goes, capped by
    /// `limits.maxFileBytes`: uploads, passed upstream as they arrive and
    /// never held whole.
    case streamed
}

/// A request body read as it arrives (`BodyPolicy.streamed`).
public protocol RequestBodySource: AnyObject {
    /// Bytes announced (`CONTENT_LENGTH`) and not read yet.
    var remaining: Int { get }
    /// Up to `buffer.count` bytes; 0 once the announced length is read; nil
    /// when the body ended before its announced length (the client left).
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int?
}
