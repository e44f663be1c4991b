import CFastCGI
import Glibc
import KimiCore

/// The listening socket: fd 0 under spawn-fcgi (FastCGI 1.0 §2.2:
/// FCGI_LISTENSOCK_FILENO), or one we open for a standalone run.
public enum Listener {
    public struct OpenError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Whether fd 0 is a listening socket handed over by spawn-fcgi or a web server.
    public static func inheritedSocketAvailable() -> Bool {
        var type: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &len) == 0 else { return false }
        var listening: Int32 = 0
        len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 else { return false }
        return listening != 0
    }

    /// Whether `spec` names a unix socket path (else HOST:PORT).
    public static func isUnixSocket(_ spec: String) -> Bool { spec.hasPrefix("/") || spec.hasPrefix("./") || !spec.contains(":") }

    /// Opens `spec`: a filesystem path for a unix socket (created mode 0660 so
    /// only the owner and the web server's group can connect), or
    /// `HOST:PORT` for TCP.
    public static func open(_ spec: String, group: String? = nil, backlog: Int32 = 1024) throws -> Int32 {
        if isUnixSocket(spec) {
            let fd = try openUnix(spec, backlog: backlog)
            if let group {
                // The web server's group may connect (mode 0660), nobody else.
                guard let gr = getgrnam(group) else { close(fd); throw OpenError(description: "unknown group \(group)") }
                guard chown(spec, uid_t.max, gr.pointee.gr_gid) == 0 else {
                    close(fd)
                    throw OpenError(description: "chown \(spec) to group \(group): \(String(cString: strerror(errno)))")
                }
            }
            return fd
        }
        return try openTCP(spec, backlog: backlog)
    }

    static func openUnix(_ path: String, backlog: Int32) throws -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw OpenError(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        // A stale socket from a previous run blocks bind; anything else at
        // that path is left alone.
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw OpenError(description: "\(path) exists and is not a socket") }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OpenError(description: "socket(): \(String(cString: strerror(errno)))") }
        // The mode is set through umask around bind so the socket never
        // exists with wider permissions, even for an instant.
        let old = umask(0o117)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw OpenError(description: "bind(\(path)): \(e)")
        }
        chmod(path, 0o660)
        guard listen(fd, backlog) == 0 else { close(fd); throw OpenError(description: "listen(): \(String(cString: strerror(errno)))") }
        return fd
    }

    static func openTCP(_ spec: String, backlog: Int32) throws -> Int32 {
        guard let colon = spec.lastIndex(of: ":"), let port = UInt16(spec[spec.index(after: colon)...]) else {
            throw OpenError(description: "expected HOST:PORT, got \(spec)")
        }
        var host = String(spec[..<colon])
        if host.isEmpty { host = "127.0.0.1" }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw OpenError(description: "not an IPv4 address: \(host)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OpenError(description: "socket(): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw OpenError(description: "bind(\(spec)): \(e)")
        }
        guard listen(fd, backlog) == 0 else { close(fd); throw OpenError(description: "listen(): \(String(cString: strerror(errno)))") }
        if !host.hasPrefix("127.") {
            Log.warn("FastCGI listens on \(spec): the socket must be reachable by the web server only (prefer a unix socket)")
        }
        return fd
    }
}
