import ArgumentParser
import Glibc
import GatewayApp
import KimiCore
import Storage

/// `kimi-gateway usage`: the usage ledger summed for operators, the same
/// rows as `GET /api/admin/usage`.
struct UsageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Sum the usage ledger by key, model or UTC day (default: this month by key).",
        discussion: """
        Reads usage.database of the config, or the --ledger files instead: several give a fleet's total (each machine \
        keeps its own ledger; copy them, e.g. with `sqlite3 gateway.db ".backup machine-a.db"`, and name them all). \
        Records still in a running process's journal (its last 100 ms) are not yet in the ledger.
        """
    )

    @Option(help: ArgumentHelp("The JSON config file.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Start, inclusive: 2026-11-01 or 2026-11-01T00:00:00Z (default: the start of this UTC month).", valueName: "iso"))
    var from: String?

    @Option(help: ArgumentHelp("End, exclusive (default: now).", valueName: "iso"))
    var to: String?

    @Option(help: ArgumentHelp("Rows per key, model or day.", valueName: "key|model|day"))
    var by: String = "key"

    @Option(name: .customLong("ledger"), help: ArgumentHelp("A ledger database to read instead of usage.database; repeat it to total several machines.", valueName: "file"))
    var ledgers: [String] = []

    @Flag(help: "Print JSON (the admin route's `data`) instead of a table.")
    var json = false

    func validate() throws {
        guard UsageLedger.Grouping(rawValue: by) != nil else { throw ValidationError("--by must be key, model or day, got '\(by)'") }
    }

    func run() throws {
        guard let cache = ConfigLoading.load(path: config) else { throw ExitCode.failure }
        let c = cache.current()
        let paths = ledgers.isEmpty ? [c.usage.database.isEmpty ? c.storage.database : c.usage.database] : ledgers
        for path in paths where access(path, F_OK) != 0 {
            throw Failure(ledgers.isEmpty ? "no usage ledger at \(path) (usage.database): the gateway has not recorded anything there yet"
                                          : "no usage ledger at \(path)")
        }
        let range: (Int64, Int64)
        switch UsageReport.range(from: from, to: to, nowMs: Clock.wallMicros() / 1000) {
        case let .success(r): range = r
        case let .failure(e): throw ValidationError(e.message)
        }
        let report: UsageReport
        var opened: [UsageLedger] = []
        for path in paths {
            do { opened.append(try UsageLedger(database: try SQLiteDatabase(path: path))) } catch {
                throw Failure("cannot read the usage ledger \(path): \(error)")
            }
        }
        do {
            report = try UsageReport.make(ledgers: opened, from: range.0, to: range.1, groupBy: UsageLedger.Grouping(rawValue: by)!,
                                          prices: c.upstream.prices)
        } catch {
            throw Failure("cannot read the usage ledgers \(paths.joined(separator: ", ")): \(error)")
        }
        print(json ? report.json.serialized() : report.table)
    }
}
