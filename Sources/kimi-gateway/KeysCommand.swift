import ArgumentParser
import GatewayApp
import Glibc
import KimiCore
import Storage

/// `kimi-gateway keys`: the admin key API's operations on the same database
/// — for the operator at the server. Safe while the gateway runs:
/// every change is a SQLite transaction, and the running processes see it
/// within a second. A new secret is printed once, on stdout.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list, show, update, rotate and revoke client keys stored in the gateway's database.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Rotate.self, Revoke.self]
    )

    struct Common: ParsableArguments {
        @Option(help: ArgumentHelp("The JSON config file (its storage.database holds the keys).", valueName: "file"))
        var config: String?

        func store() throws -> KeyStore {
            guard let cache = ConfigLoading.load(path: config) else { throw ExitCode.failure }
            let path = cache.current().storage.database
            guard SharedFiles.ensureParent(of: path) else { throw Failure("cannot create the directory of \(path)") }
            do { return try KeyStore(database: try SQLiteDatabase(path: path)) } catch { throw Failure("cannot open the key store \(path): \(error)") }
        }
    }

    static func print(_ value: JSON) { Swift.print(value.serialized()) }

    static func audit(_ what: String) { Log.info("audit: cli (uid \(getuid())) \(what)") }

    static func fail(_ e: Error) -> Failure { Failure((e as? GatewayError)?.message ?? "\(e)") }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; prints it (with its secret, shown only now) as JSON.")
        @OptionGroup var common: Common
        @Option(help: "Its name.") var name: String
        @Option(help: ArgumentHelp("Its other fields as JSON: role, models, rateLimit, budget, maxConcurrent, expiresAt, note.", valueName: "json"))
        var spec: String = "{}"

        func run() throws {
            let store = try common.store()
            do {
                guard let body = try? JSON.parse(Array(spec.utf8)), body.objectValue != nil else { throw ValidationError("--spec must be a JSON object") }
                try Gateway.checkKeyFields(body, creating: true)
                let clean = HeaderSafety.printable(name, max: 64)
                let s = try Gateway.keySpec(from: body, base: ["name": .string(clean)])
                let (entry, secret) = try store.create(name: clean, spec: s, expiresAtMs: try Gateway.expiry(body["expiresAt"]))
                audit("created key \(entry.id) name=\(entry.name)")
                KeysCommand.print(Gateway.describe(entry).setting("key", .string(secret)))
            } catch let e as ValidationError { throw e } catch { throw KeysCommand.fail(error) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the stored keys (never a secret), one JSON object a line.")
        @OptionGroup var common: Common
        func run() throws {
            for e in try common.store().all() { KeysCommand.print(Gateway.describe(e)) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one key.")
        @OptionGroup var common: Common
        @Argument(help: "The key's id.") var id: String
        func run() throws {
            guard let e = try common.store().get(id) else { throw Failure("no such key: \(id)") }
            KeysCommand.print(Gateway.describe(e))
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a key: the fields of PATCH /api/admin/keys/{id} as JSON (null clears).")
        @OptionGroup var common: Common
        @Argument(help: "The key's id.") var id: String
        @Argument(help: ArgumentHelp("The changes, e.g. '{\"maxConcurrent\": 4, \"enabled\": false}'.", valueName: "json")) var changes: String
        func run() throws {
            let store = try common.store()
            guard let body = try? JSON.parse(Array(changes.utf8)), let fields = body.objectValue, !fields.isEmpty else {
                throw ValidationError("the changes must be a non-empty JSON object")
            }
            do {
                try Gateway.checkKeyFields(body, creating: false)
                let entry = try store.update(id) { try Gateway.apply(body, to: &$0) }
                guard let entry else { throw Failure("no such key: \(id)") }
                audit("changed key \(id) (\(fields.map(\.0).sorted().joined(separator: ",")))")
                KeysCommand.print(Gateway.describe(entry))
            } catch let e as Failure { throw e } catch { throw KeysCommand.fail(error) }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give a key a new secret (printed now, once); the old one works for --grace-seconds more.")
        @OptionGroup var common: Common
        @Argument(help: "The key's id.") var id: String
        @Option(help: "How long the old secret still works (0 to 2592000).") var graceSeconds = 0
        func validate() throws {
            guard (0...30 * 86_400).contains(graceSeconds) else { throw ValidationError("--grace-seconds takes 0...2592000") }
        }
        func run() throws {
            guard let (entry, secret) = try common.store().rotate(id, graceSeconds: graceSeconds) else { throw Failure("no such key: \(id)") }
            audit("rotated key \(id) grace=\(graceSeconds)s")
            KeysCommand.print(Gateway.describe(entry).setting("key", .string(secret)))
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key at once and for good (kept, so the ledger's rows still name it).")
        @OptionGroup var common: Common
        @Argument(help: "The key's id.") var id: String
        func run() throws {
            guard let entry = try common.store().revoke(id) else { throw Failure("no such key: \(id)") }
            audit("revoked key \(id) name=\(entry.name)")
            KeysCommand.print(Gateway.describe(entry))
        }
    }
}
