import ArgumentParser
import GatewayApp

/// `kimi-gateway <command>`. Every command answers `-h`/`--help` (exit 0);
/// a wrong option is named in the error (exit 64, EX_USAGE).
@main
struct KimiGatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kimi-gateway",
        abstract: "Self-hosted Kimi (Moonshot AI) API gateway, a FastCGI responder behind nginx or lighttpd.",
        version: "kimi-gateway \(Version.current)",
        subcommands: [ServeCommand.self, CheckConfigCommand.self, HashKeyCommand.self, KeysCommand.self, UsageCommand.self, SimulateCommand.self, VersionCommand.self]
    )
}

/// The listening socket and log file, the same for `serve` and `simulate`.
struct ListenerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Listen on a unix socket (created mode 0660) or HOST:PORT. Without it the listening socket is fd 0, as spawn-fcgi and systemd socket activation hand it over.",
                               valueName: "path|host:port"))
    var socket: String?

    @Option(name: .customLong("socket-group"), help: ArgumentHelp("Give the unix socket to this group (the web server's).", valueName: "group"))
    var socketGroup: String?

    @Option(name: .customLong("log-file"), help: ArgumentHelp("Write logs here instead of stderr (reopened on SIGHUP, for logrotate).", valueName: "path"))
    var logFile: String?

    func validate() throws {
        if socketGroup != nil, socket == nil { throw ValidationError("--socket-group needs --socket (an inherited socket is not ours to chown)") }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")
    func run() { print("kimi-gateway \(Version.current)") }
}
