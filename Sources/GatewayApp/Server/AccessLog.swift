import KimiCore

/// One line per request on stderr: method, path, status, bytes, duration,
/// request id and notes. No header values, no bodies, no keys.
public enum AccessLog {
    /// Built on bytes: it runs for every request.
    public static func write(request: Request, status: Int, bytes: Int, nanos: UInt64, notes: [String]) {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        func add(_ s: String) { line.append(contentsOf: s.utf8) }
        func int(_ v: Int) { add(String(v)) }
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
        Log.writeLine(line)
    }
}
