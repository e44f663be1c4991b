/// One declaration per config key: its name in the JSON file,
/// its environment variable, how it is read and checked, whether a reload
/// may change it, and one line of documentation. Parsing the file
/// (`GatewayConfig.parse`), the environment overlay (`applying(env:)`),
/// the reload rule (`keepingRestartOnly`) and the README's table
/// (`ConfigKey.markdownTable`, checked against README.md by a test) all
/// come from `GatewayConfig.keys`: adding a key is one entry there.
public struct ConfigKey: Sendable {
    public enum Reload: String, Sendable {
        /// A reload applies it to new requests.
        case live
        /// Read once at start: a reload that changes it keeps the running
        /// value and logs `restart needed for …`.
        case restart
    }

    /// `section.leaf` (`upstream.retries`); "" for a variable with no file key.
    public let path: String
    public let env: String?
    public let reload: Reload
    /// The default as the README says it.
    public let defaultText: String
    public let doc: String
    let fromJSON: (@Sendable (inout GatewayConfig, JSON, ConfigReader, String) throws(ConfigError) -> Void)?
    typealias EnvSetter = @Sendable (inout GatewayConfig, String) throws(ConfigError) -> Void
    let fromEnv: EnvSetter?
    /// Puts the running value back when a reload changed it; says what changed.
    let keep: @Sendable (inout GatewayConfig, GatewayConfig) -> String?

    public var section: String { path.split(separator: ".").first.map(String.init) ?? "" }
    public var leaf: String { path.split(separator: ".").dropFirst().joined(separator: ".") }

    init(path: String, env: String?, reload: Reload, defaultText: String, doc: String,
         fromJSON: (@Sendable (inout GatewayConfig, JSON, ConfigReader, String) throws(ConfigError) -> Void)?,
         fromEnv: EnvSetter?,
         keep: @escaping @Sendable (inout GatewayConfig, GatewayConfig) -> String? = { _, _ in nil })
    {
        (self.path, self.env, self.reload, self.defaultText, self.doc) = (path, env, reload, defaultText, doc)
        (self.fromJSON, self.fromEnv, self.keep) = (fromJSON, fromEnv, keep)
    }

    // MARK: the kinds of key

    typealias Path<T> = WritableKeyPath<GatewayConfig, T> & Sendable

    static func keeper<T: Equatable>(_ name: String, _ kp: Path<T>, _ reload: Reload) -> @Sendable (inout GatewayConfig, GatewayConfig) -> String? {
        guard reload == .restart else { return { _, _ in nil } }
        return { c, running in
            guard c[keyPath: kp] != running[keyPath: kp] else { return nil }
            defer { c[keyPath: kp] = running[keyPath: kp] }
            return "\(name) (\(c[keyPath: kp]) → kept \(running[keyPath: kp]))"
        }
    }

    /// An integer from `min` up to `GatewayConfig.maxima` (by leaf or
    /// variable name; 10^9 when not listed).
    static func int(_ path: String, _ kp: Path<Int>, min: Int, env: String? = nil, reload: Reload = .live,
                    default text: String? = nil, _ doc: String) -> ConfigKey
    {
        var fromEnv: EnvSetter?
        if let name = env { fromEnv = { c, raw throws(ConfigError) in c[keyPath: kp] = try envInt(name, raw, min: min) } }
        return ConfigKey(path: path, env: env, reload: reload, defaultText: text ?? "`\(GatewayConfig()[keyPath: kp])`", doc: doc,
                         fromJSON: { c, v, r, leaf throws(ConfigError) in c[keyPath: kp] = try r.int(v, leaf, min: min) },
                         fromEnv: fromEnv, keep: keeper(path, kp, reload))
    }

    /// true or false; in the environment also 1/0, yes/no, on/off ("" is false).
    static func bool(_ path: String, _ kp: Path<Bool>, env: String? = nil, reload: Reload = .live, _ doc: String) -> ConfigKey {
        var fromEnv: EnvSetter?
        if let name = env { fromEnv = { c, raw throws(ConfigError) in c[keyPath: kp] = try envBool(name, raw) } }
        return ConfigKey(path: path, env: env, reload: reload, defaultText: "`\(GatewayConfig()[keyPath: kp])`", doc: doc,
                         fromJSON: { c, v, r, leaf throws(ConfigError) in c[keyPath: kp] = try r.bool(v, leaf) },
                         fromEnv: fromEnv, keep: keeper(path, kp, reload))
    }

    /// A string; from the environment trimmed, an empty variable ignored.
    static func string(_ path: String, _ kp: Path<String>, env: String? = nil, reload: Reload = .live,
                       default text: String? = nil, _ doc: String) -> ConfigKey
    {
        let value = GatewayConfig()[keyPath: kp]
        var fromEnv: EnvSetter?
        if env != nil {
            fromEnv = { c, raw in
                let t = raw.trimmingSpaces()
                if !t.isEmpty { c[keyPath: kp] = t }
            }
        }
        return ConfigKey(path: path, env: env, reload: reload, defaultText: text ?? (value.isEmpty ? "—" : "`\(value)`"), doc: doc,
                         fromJSON: { c, v, r, leaf throws(ConfigError) in c[keyPath: kp] = try r.string(v, leaf) },
                         fromEnv: fromEnv, keep: keeper(path, kp, reload))
    }

    /// An array of strings; from the environment comma-separated.
    static func strings(_ path: String, _ kp: Path<[String]>, env: String? = nil, _ doc: String) -> ConfigKey {
        let value = GatewayConfig()[keyPath: kp]
        var fromEnv: EnvSetter?
        if env != nil { fromEnv = { c, raw in c[keyPath: kp] = raw.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } } }
        return ConfigKey(path: path, env: env, reload: .live,
                         defaultText: value.isEmpty ? "`[]`" : value.map { "`\($0)`" }.joined(separator: ", "), doc: doc,
                         fromJSON: { c, v, r, leaf throws(ConfigError) in c[keyPath: kp] = try r.strings(v, leaf) },
                         fromEnv: fromEnv)
    }

    /// One of the cases of a string enum.
    static func choice<E: RawRepresentable & Equatable & Sendable>(_ path: String, _ kp: Path<E>, env: String? = nil, _ doc: String,
                                                                    parse: @escaping @Sendable (String, String) throws(ConfigError) -> E) -> ConfigKey
        where E.RawValue == String
    {
        var fromEnv: EnvSetter?
        if let name = env { fromEnv = { c, raw throws(ConfigError) in if !raw.isEmpty { c[keyPath: kp] = try parse(raw, name) } } }
        return ConfigKey(path: path, env: env, reload: .live, defaultText: "`\(GatewayConfig()[keyPath: kp].rawValue)`", doc: doc,
                         fromJSON: { c, v, r, leaf throws(ConfigError) in c[keyPath: kp] = try parse(try r.string(v, leaf), path) },
                         fromEnv: fromEnv)
    }

    /// A key with a shape of its own (a list of objects, a map): its reader is written out.
    static func structured(_ path: String, default text: String, _ doc: String,
                           _ read: @escaping @Sendable (inout GatewayConfig, JSON) throws(ConfigError) -> Void) -> ConfigKey
    {
        ConfigKey(path: path, env: nil, reload: .live, defaultText: text, doc: doc, fromJSON: { c, v, _, _ throws(ConfigError) in try read(&c, v) },
                  fromEnv: nil)
    }

    /// A variable with no key in the file; what it does is in `applying(env:)`.
    static func envOnly(_ name: String, default text: String = "—", _ doc: String) -> ConfigKey {
        ConfigKey(path: "", env: name, reload: .live, defaultText: text, doc: doc, fromJSON: nil, fromEnv: nil)
    }

    static func envInt(_ name: String, _ raw: String, min: Int) throws(ConfigError) -> Int {
        let t = raw.trimmingSpaces()
        guard let v = Int(t) else { throw ConfigError(name, "must be an integer, got \"\(HeaderSafety.printable(t, max: 40))\"") }
        guard v >= min else { throw ConfigError(name, "must be at least \(min), got \(v)") }
        let maxValue = GatewayConfig.maxima[name] ?? 1_000_000_000
        guard v <= maxValue else { throw ConfigError(name, "must be at most \(maxValue), got \(v)") }
        return v
    }

    static func envBool(_ name: String, _ raw: String) throws(ConfigError) -> Bool {
        switch raw.trimmingSpaces().lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off", "": return false
        default: throw ConfigError(name, "must be true or false, got \"\(HeaderSafety.printable(raw, max: 40))\"")
        }
    }

    // MARK: the README's table

    /// The README's configuration table, one row per declaration.
    public static func markdownTable(_ keys: [ConfigKey] = GatewayConfig.keys) -> String {
        var out = "| Key | Env | Default | Reload | Meaning |\n|---|---|---|---|---|\n"
        for k in keys {
            let env = k.env.map { "`\($0)`" } ?? "—"
            out += "| \(k.path.isEmpty ? "—" : "`\(k.path)`") | \(env) | \(k.defaultText) | \(k.path.isEmpty ? "—" : k.reload.rawValue) | \(k.doc) |\n"
        }
        return out
    }
}
