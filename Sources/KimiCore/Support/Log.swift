#if canImport(Glibc)
import Glibc
#endif

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

    public static func info(_ message: String) { sink("\(Clock.iso8601()) info \(message)") }
    public static func warn(_ message: String) { sink("\(Clock.iso8601()) warn \(message)") }
    public static func error(_ message: String) { sink("\(Clock.iso8601()) error \(message)") }
}
