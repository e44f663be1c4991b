import CFastCGI
import Glibc
import KimiCore

/// One accepted FastCGI request: its params copied into Swift, its body
/// readable with a bound, and a `ResponseWriter` over libfcgi's output
/// stream. Lives on one worker thread from accept to finish.
public final class FastCGIExchange: ResponseWriter {
    public let params: CGIParams
    private let out: UnsafeMutablePointer<FCGX_Stream>
    private let input: UnsafeMutablePointer<FCGX_Stream>
    /// The FastCGI connection (to watch for the web server closing it).
    private let fd: Int32
    /// Header lines written after the status on every response, already
    /// serialized (the gateway's constant security headers): validated once,
    /// not per response.
    public var fixedHead: [UInt8] = []
    /// Set by the pool when this request came while `maxThreads` requests
    /// were running: answer it quickly (health, or 503), the thread is the reserve.
    public internal(set) var overloaded = false
    /// Close the FastCGI connection after this request instead of keeping
    /// it (a streamed body left unread).
    public var closeConnection = false
    public private(set) var headWritten = false
    public private(set) var clientGone = false
    public private(set) var status = 0
    /// Body bytes written (for the access log).
    public private(set) var bytesWritten = 0

    init(request: UnsafeMutablePointer<FCGX_Request>) {
        var p = CGIParams()
        var i: Int32 = 0
        // Copy now: these pointers die at FCGX_Finish_r.
        while let entry = kimi_fcgx_env_at(request, i) {
            entry.withMemoryRebound(to: UInt8.self, capacity: 1) { bytes in
                p.add(entry: UnsafeBufferPointer(start: bytes, count: strlen(entry)))
            }
            i += 1
        }
        params = p
        out = request.pointee.out
        input = request.pointee.in
        fd = request.pointee.ipcFd
    }

    /// Reads exactly `count` body bytes; nil when the web server sent fewer
    /// (the client announced more than it sent). `count` was checked
    /// against the cap by the caller before this allocates.
    public func readBody(count: Int) -> [UInt8]? {
        guard count > 0 else { return [] }
        var body = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = body.withUnsafeMutableBytes { p in
                FCGX_GetStr(p.baseAddress!.assumingMemoryBound(to: CChar.self) + got, Int32(min(count - got, 1 << 20)), input)
            }
            if n <= 0 { return nil }
            got += Int(n)
        }
        return body
    }

    /// Reads what is left of the request's input, up to the empty
    /// FCGI_STDIN record that ends it (FastCGI 1.0 §5.3); true when it ended
    /// cleanly within `limit` bytes. A kept connection must start its next
    /// request at a BEGIN_REQUEST record, and FCGX_Finish_r drops libfcgi's
    /// buffer but leaves what is still in the socket: when the end record came
    /// after the body's last byte (nginx sends a body it buffered to a file in
    /// more than one write), the next FCGX_Accept_r read it as a stray record,
    /// libfcgi closed the connection, and nginx answered that next request
    /// 502 ("upstream prematurely closed connection", 3 in ~700 requests of
    /// 20 KB). Usually the record is already in the buffer: no syscall.
    func readToEndOfInput(limit: Int = 64 << 10) -> Bool {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { scratch in
            var left = limit
            while true {
                let n = Int(FCGX_GetStr(scratch.baseAddress!, Int32(scratch.count), input))
                if n <= 0 { break }
                left -= n
                if left < 0 { return false }
            }
            return FCGX_GetError(input) == 0
        }
    }

    /// Up to `count` body bytes (at least one unless the stream ended or failed).
    func readSome(into base: UnsafeMutableRawPointer, count: Int) -> Int {
        Int(FCGX_GetStr(base.assumingMemoryBound(to: CChar.self), Int32(count), input))
    }

    public func writeHead(status: Int, headers: [(String, String)]) {
        guard !headWritten else { return }
        headWritten = true
        self.status = status
        // CGI response (RFC 3875 §6.3.3): a `Status:` header, never an HTTP status line.
        var head: [UInt8] = []
        head.reserveCapacity(1024)
        head.appendUTF8("Status: ")
        head.appendDecimal(status)
        head.append(0x20)
        head.appendUTF8(HTTPStatus.reason(status))
        head.append(0x0D); head.append(0x0A)
        head.append(contentsOf: fixedHead)
        for (name, value) in headers {
            var (name, value) = (name, value)
            name.withUTF8 { n in
                value.withUTF8 { v in
                    // A header that could split the head is dropped, never written.
                    guard HeaderSafety.isSafe(n), HeaderSafety.isSafe(v) else { return }
                    head.append(contentsOf: n)
                    head.append(0x3A); head.append(0x20)
                    head.append(contentsOf: v)
                    head.append(0x0D); head.append(0x0A)
                }
            }
        }
        head.append(0x0D); head.append(0x0A)
        putRaw(head)
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        guard !clientGone else { return false }
        bytesWritten += bytes.count
        return putRaw(bytes)
    }

    @discardableResult
    private func putRaw(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return !clientGone }
        // FCGX_PutStr takes an Int32 length: write in pieces of at most 1 MiB.
        bytes.withUnsafeBytes { p in
            var offset = 0
            while offset < p.count, !clientGone {
                let n = min(p.count - offset, 1 << 20)
                let written = FCGX_PutStr(p.baseAddress!.assumingMemoryBound(to: CChar.self) + offset, Int32(n), out)
                if written < 0 || FCGX_GetError(out) != 0 { clientGone = true }
                offset += n
            }
        }
        return !clientGone
    }

    /// Flushes libfcgi's 8 KiB buffer. When nginx has closed the connection
    /// (the client left), the first flush fails with EPIPE; later writes
    /// look successful, so the error is checked after every flush.
    @discardableResult
    public func flush() -> Bool {
        guard !clientGone else { return false }
        if FCGX_FFlush(out) != 0 || FCGX_GetError(out) != 0 { clientGone = true }
        return !clientGone
    }

    /// Polls the connection: nginx closes it when its client leaves
    /// (`fastcgi_ignore_client_abort off`), which shows as POLLRDHUP or a
    /// zero-byte peek. Anything else readable (a record nginx sent) ends
    /// the watching, not the wait. With 0 ms: one look, no wait.
    public func waitWhileConnected(milliseconds: Int) -> Bool {
        guard !clientGone else { return false }
        let end = Clock.monotonicNanos() &+ UInt64(max(0, milliseconds)) * 1_000_000
        var looked = false
        while true {
            let now = Clock.monotonicNanos()
            guard now < end || !looked else { return true }
            looked = true
            let left = now < end ? Int32(min(UInt64(Int32.max), (end - now + 999_999) / 1_000_000)) : 0
            var p = pollfd(fd: fd, events: Int16(POLLIN) | 0x2000 /* POLLRDHUP */, revents: 0)
            let n = fd >= 0 ? poll(&p, 1, left) : { usleep(useconds_t(left) * 1000); return 0 }()
            if n < 0, errno == EINTR { looked = false; continue }
            guard n > 0 else { return n == 0 ? true : !clientGone }
            var byte: UInt8 = 0
            if p.revents & (0x2000 | Int16(POLLHUP) | Int16(POLLERR)) != 0 || recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0 {
                clientGone = true
                return false
            }
            usleep(useconds_t(left) * 1000)
            return true
        }
    }
}
