import CHiredis
import Glibc
import KimiCore

/// Why a Redis call did not answer: the caller decides on the file instead.
public struct RedisFailure: Error, CustomStringConvertible {
    public let description: String
    /// No answer within the timeout (as opposed to a refused or closed connection).
    public let timedOut: Bool
    /// The connection failed (closed, reset, timed out), as opposed to Redis answering with an error.
    public let io: Bool
    init(_ d: String, timedOut: Bool = false, io: Bool = false) { description = d; self.timedOut = timedOut; self.io = io || timedOut }
}

/// One blocking hiredis connection, used by one thread at a time, with
/// the same timeout on connect, send and receive (SO_RCVTIMEO/SO_SNDTIMEO
/// through `redisSetTimeout`): no call waits longer than `redis.timeoutMs`.
/// After any failure the connection is discarded (a late reply would
/// otherwise answer the next command).
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    private let timeoutMs: Int

    init(endpoint: RedisEndpoint, timeoutMs: Int) throws(RedisFailure) {
        self.timeoutMs = timeoutMs
        let tv = kimi_redis_tv(timeoutMs * 1000)
        guard let c = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), tv) else {
            throw RedisFailure("cannot allocate a connection")
        }
        if c.pointee.err != 0 {
            let failure = Self.failure(c, timeoutMs: timeoutMs)
            redisFree(c)
            throw RedisFailure("connect to \(endpoint): \(failure.description)", timedOut: failure.timedOut)
        }
        context = c
        _ = redisSetTimeout(c, tv)
        // From here on a throw frees `context` in deinit (the instance is complete).
        if !endpoint.password.isEmpty {
            // The reply names no password ("WRONGPASS invalid username-password pair ...").
            if case .error(let e) = try command(["AUTH", endpoint.password]) {
                throw RedisFailure("AUTH refused (\(e)): check REDIS_PASSWORD")
            }
        }
        if endpoint.db != 0, case .error(let e) = try command(["SELECT", String(endpoint.db)]) {
            throw RedisFailure("SELECT \(endpoint.db): \(e)")
        }
    }

    deinit { redisFree(context) }

    enum Reply: Equatable {
        case integer(Int64), string(String), status(String), error(String), null
        indirect case array([Reply])

        var integer: Int64? {
            switch self {
            case .integer(let v): v
            case .string(let s): Int64(s)
            case .null: 0
            default: nil
            }
        }
    }

    /// One command, one reply; throws on I/O failure or timeout (an error
    /// reply is a reply).
    func command(_ args: [String]) throws(RedisFailure) -> Reply {
        var pointers: [UnsafePointer<CChar>?] = []
        var lengths: [Int] = []
        pointers.reserveCapacity(args.count)
        lengths.reserveCapacity(args.count)
        let owned = args.map { strdup($0) }
        defer { owned.forEach { free($0) } }
        for (a, p) in zip(args, owned) {
            pointers.append(UnsafePointer(p))
            lengths.append(a.utf8.count)
        }
        let reply = pointers.withUnsafeMutableBufferPointer { pp in
            lengths.withUnsafeBufferPointer { lp in kimi_redis_argv(context, Int32(args.count), pp.baseAddress, lp.baseAddress) }
        }
        guard let reply else { throw Self.failure(context, timeoutMs: timeoutMs) }
        defer { freeReplyObject(reply) }
        return Self.convert(reply)
    }

    private static func convert(_ r: UnsafeMutablePointer<redisReply>) -> Reply {
        let text = { r.pointee.str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: r.pointee.len), as: UTF8.self) } ?? "" }
        switch r.pointee.type {
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.pointee.integer))
        case REDIS_REPLY_STRING: return .string(text())
        case REDIS_REPLY_STATUS: return .status(text())
        case REDIS_REPLY_ERROR: return .error(text())
        case REDIS_REPLY_ARRAY:
            return .array((0..<r.pointee.elements).map { i in r.pointee.element[i].map(convert) ?? .null })
        default: return .null
        }
    }

    private static func failure(_ c: UnsafeMutablePointer<redisContext>, timeoutMs: Int) -> RedisFailure {
        let text = withUnsafeBytes(of: c.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if c.pointee.err == REDIS_ERR_IO, errno == EAGAIN || errno == EINPROGRESS || text.contains("temporarily unavailable") || text.contains("timed out") {
            return RedisFailure("no answer within \(timeoutMs) ms", timedOut: true)
        }
        if c.pointee.err == REDIS_ERR_EOF { return RedisFailure("the server closed the connection", io: true) }
        return RedisFailure(text.isEmpty ? "I/O error" : text, io: c.pointee.err == REDIS_ERR_IO)
    }
}
