import ArgumentParser
import Glibc
import KimiCore

/// `kimi-gateway hash-key`: the SHA-256 for `auth.keys[].sha256`.
struct HashKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-key",
        abstract: "Print the SHA-256 of an API key, for auth.keys[].sha256.",
        discussion: "Without KEY the key is read from standard input: on a terminal without echo, so it stays out of the screen and the shell history."
    )

    @Argument(help: ArgumentHelp("The key (better left out: read from standard input).", valueName: "key"))
    var key: String?

    func run() throws {
        let given = key ?? (isatty(0) == 1 ? Self.readWithoutEcho(prompt: "API key: ") : readLine(strippingNewline: true))
        guard let k = given?.trimmingSpaces(), !k.isEmpty else { throw ValidationError("hash-key needs a key (as an argument or on standard input)") }
        print(SHA256.hex(k))
    }

    /// One line from the terminal with echo off (termios), the prompt and the
    /// closing newline on stderr; echo comes back even when reading fails.
    /// Echo goes off before the prompt is shown, and without flushing
    /// (TCSANOW): with the prompt first and TCSAFLUSH, a key typed or pasted
    /// as soon as the prompt appeared was thrown away and the command waited
    /// for ever (seen under load in the pty test).
    static func readWithoutEcho(prompt: String) -> String? {
        var saved = termios()
        guard tcgetattr(0, &saved) == 0 else {
            fputs(prompt, stderr)
            return readLine(strippingNewline: true)
        }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSANOW, &quiet)
        defer {
            tcsetattr(0, TCSANOW, &saved)
            fputs("\n", stderr)
        }
        fputs(prompt, stderr)
        return readLine(strippingNewline: true)
    }
}
