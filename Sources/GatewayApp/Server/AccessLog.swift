import KimiCore

/// One line per request on stderr: method, path, status, bytes, duration,
/// request id and notes. No header values, no bodies, no keys. Written by
/// the process's log writer thread, never by the request's (`LogBuffer`).
public enum AccessLog {
    /// Built on bytes: it runs for every request.
    public static func write(request: Request, status: Int, bytes: Int, nanos: UInt64, notes: [String]) {
        if Log.jsonLines { return LogBuffer.shared.append(line: json(request: request, status: status, bytes: bytes, nanos: nanos, notes: notes)) }
        var line: [UInt8] = []
        line.reserveCapacity(256)
        func add(_ s: String) { line.appendUTF8(s) }
        func int(_ v: Int) { line.appendDecimal(v) }
        add(Clock.iso8601())
        add(" access ")
        add(HeaderSafety.printable(request.method, max: 16)); line.append(0x20)
        add(HeaderSafety.printable(request.rawPath, max: 200)); line.append(0x20)
        int(status); line.append(0x20)
        int(bytes); add("B ")
        let micros = Int(nanos / 1000)
        int(micros / 1000); line.append(0x2E)
        let frac = micros % 1000
        if frac < 100 { line.append(0x30) }
        if frac < 10 { line.append(0x30) }
        int(frac); add("ms rid=")
        add(request.requestID)
        add(" ip=")
        add(HeaderSafety.printable(request.remoteAddr, max: 64))
        for n in notes { line.append(0x20); add(n) }
        LogBuffer.shared.append(line: line)
    }

    /// The same fields as one JSON object (`log.format: "json"`): the notes'
    /// `name=value` pairs as fields of their own, bare words in `flags`.
    public static func json(request: Request, status: Int, bytes: Int, nanos: UInt64, notes: [String]) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(320)
        func key(_ k: String) { b.appendUTF8(k) }
        func text(_ s: String) { JSON.writeString(s, into: &b) }
        key(#"{"time":"#); text(Clock.iso8601())
        key(#","level":"access","method":"#); text(HeaderSafety.printable(request.method, max: 16))
        key(#","path":"#); text(HeaderSafety.printable(request.rawPath, max: 200))
        key(#","status":"#); key(String(status))
        key(#","bytes":"#); key(String(bytes))
        let micros = Int(nanos / 1000)
        key(#","durationMs":"#); key(String(micros / 1000)); b.append(0x2E)
        let frac = micros % 1000
        if frac < 100 { b.append(0x30) }
        if frac < 10 { b.append(0x30) }
        key(String(frac))
        key(#","rid":"#); text(request.requestID)
        key(#","ip":"#); text(HeaderSafety.printable(request.remoteAddr, max: 64))
        var flags: [String] = []
        var seen: Set<Substring> = ["time", "level", "method", "path", "status", "bytes", "durationMs", "rid", "ip", "flags"]
        for n in notes {
            guard let eq = n.utf8.firstIndex(of: 0x3D), eq != n.startIndex, seen.insert(n[..<eq]).inserted else {
                flags.append(n)
                continue
            }
            b.append(0x2C); text(String(n[..<eq])); b.append(0x3A); text(String(n[n.index(after: eq)...]))
        }
        if !flags.isEmpty {
            key(#","flags":["#)
            for (i, f) in flags.enumerated() {
                if i > 0 { b.append(0x2C) }
                text(f)
            }
            b.append(0x5D)
        }
        b.append(0x7D)
        return b
    }
}
