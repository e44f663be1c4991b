#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Log lines to stderr, each written with one write(2) so lines from many
/// threads and processes never interleave (POSIX: writes up to PIPE_BUF to a
/// pipe are atomic). Nothing secret is ever passed here: callers log
/// fingerprints.
public enum Log {
    /// Where info/warn/error lines go (tests replace it). Behind a lock: it
    /// may be swapped while other threads log. Access-log lines bypass it.
    private static let sinkBox = Locked<(String) -> Void>({ line in writeLine(Array(line.utf8)) })
    public static var sink: (String) -> Void {
        get { sinkBox.get() }
        set { sinkBox.set(newValue) }
    }

    /// One line (a newline is added), in one write(2).
    public static func writeLine(_ bytes: [UInt8]) {
        var b = bytes
        b.append(0x0A)
        b.withUnsafeBytes { p in _ = Glibc.write(2, p.baseAddress, p.count) }
    }

    public static func info(_ message: String) { sink(line("info", message)) }
    public static func warn(_ message: String) { sink(line("warn", message)) }
    public static func error(_ message: String) { sink(line("error", message)) }

    /// `log.format`: JSON lines instead of text, read per line.
    private static let json = Atomic<Bool>(false)
    public static var jsonLines: Bool {
        get { json.load(ordering: .relaxed) }
        set { json.store(newValue, ordering: .relaxed) }
    }

    /// `time level message`, or `{"time":…,"level":…,"msg":…}`.
    public static func line(_ level: String, _ message: String, json: Bool = jsonLines) -> String {
        guard json else { return Clock.iso8601() + " " + level + " " + message }
        var b: [UInt8] = []
        b.reserveCapacity(64 + message.utf8.count)
        b.append(contentsOf: #"{"time":"#.utf8)
        JSON.writeString(Clock.iso8601(), into: &b)
        b.append(contentsOf: #","level":"#.utf8)
        JSON.writeString(level, into: &b)
        b.append(contentsOf: #","msg":"#.utf8)
        JSON.writeString(message, into: &b)
        b.append(0x7D)
        return String(decoding: b, as: UTF8.self)
    }
}
