/// The Kimi API's models as this gateway knows them without asking: the
/// context lengths of models the upstream lists without one, and the list
/// served when the upstream's `GET /models` cannot be had (and by the
/// simulator). The upstream's list is the truth (`ModelCatalogue`).
public enum KimiModels {
    /// The line-up at the end of 2026. Discontinued in 2026 and so not here
    /// (still served when the upstream lists them): `kimi-k2-thinking(-turbo)`,
    /// `kimi-k2-turbo-preview`, `kimi-latest`, the `kimi-k2-0711/0905-preview`s.
    public static let catalogue: [GatewayConfig.Model] = [
        .init(id: "moonshot-v1-8k", contextLength: 8192),
        .init(id: "moonshot-v1-32k", contextLength: 32768),
        .init(id: "moonshot-v1-128k", contextLength: 131072),
        .init(id: "moonshot-v1-auto", contextLength: 131072),
        .init(id: "kimi-k2.6", contextLength: 262144),
        .init(id: "kimi-k2.5", contextLength: 262144),
        .init(id: "kimi-k2.7-code", contextLength: 262144),
        .init(id: "kimi-k2.7-code-highspeed", contextLength: 262144),
        .init(id: "kimi-k3", contextLength: 1_048_576),
        .init(id: "moonshot-v1-8k-vision-preview", contextLength: 8192),
        .init(id: "moonshot-v1-32k-vision-preview", contextLength: 32768),
        .init(id: "moonshot-v1-128k-vision-preview", contextLength: 131072),
    ]

    /// Whether the model reasons (`reasoning_content`) on a request with
    /// this body: `kimi-k3` and `kimi-k2.7-code*` always (K3 takes a
    /// top-level `reasoning_effort`, no `thinking` parameter); `kimi-k2.6`
    /// unless the request says `"thinking": {"type": "disabled"}`; the
    /// discontinued `*-thinking` models always.
    public static func reasons(_ id: String, body: JSON) -> Bool {
        if id.hasPrefix("kimi-k3") || id.hasPrefix("kimi-k2.7-code") || id.contains("thinking") { return true }
        if id.hasPrefix("kimi-k2.6") { return body["thinking"]?["type"]?.stringValue != "disabled" }
        return false
    }

    /// A model's context: the built-in table, else Moonshot's naming scheme.
    public static func contextLength(_ id: String) -> Int {
        if let m = catalogue.first(where: { $0.id == id }) { return m.contextLength }
        if id.hasPrefix("kimi-k3") { return 1_048_576 }
        if id.hasSuffix("-8k") || id.contains("-8k-") { return 8192 }
        if id.hasSuffix("-32k") || id.contains("-32k-") { return 32768 }
        if id.hasSuffix("-128k") || id.contains("-128k-") || id.hasSuffix("-auto") { return 131072 }
        if id.hasPrefix("kimi-k2") { return 262144 }
        return 8192
    }
}

/// The models a client may use, from the upstream's `GET /models` and the
/// config: by default every model the upstream lists, so a
/// model Kimi adds works without a config change; `upstream.models` in the
/// config narrows that list; a key's own `models` narrows it further.
/// Context lengths: the config's, else the upstream's, else `KimiModels`.
public struct ModelCatalogue: Sendable, Equatable {
    public enum Source: String, Sendable {
        /// The upstream's list (narrowed by the config when it names models).
        case upstream
        /// The upstream's list could not be had: the configured models, or the built-in table.
        case fallback
    }

    public var models: [GatewayConfig.Model]
    public var source: Source
    /// The upstream's own entries for these models, by id (for `/v1/models`).
    public var entries: [String: JSON]

    public init(models: [GatewayConfig.Model], source: Source, entries: [String: JSON] = [:]) {
        self.models = models
        self.source = source
        self.entries = entries
    }

    /// `upstreamList` is the upstream's `GET /models` answer, nil when it
    /// could not be had.
    public static func make(upstreamList: JSON?, config: GatewayConfig) -> ModelCatalogue {
        let configured = config.upstream.modelsConfigured ? config.upstream.models : nil
        guard let data = upstreamList?["data"]?.arrayValue else {
            return ModelCatalogue(models: configured ?? KimiModels.catalogue, source: .fallback)
        }
        var listed: [GatewayConfig.Model] = []
        var entries: [String: JSON] = [:]
        for entry in data {
            guard let id = entry["id"]?.stringValue, !id.isEmpty, entries[id] == nil else { continue }
            let context = entry["context_length"]?.intValue ?? KimiModels.contextLength(id)
            listed.append(.init(id: id, contextLength: context))
            entries[id] = entry
        }
        guard let configured else { return ModelCatalogue(models: listed, source: .upstream, entries: entries) }
        // The operator's choice, in the operator's order, with the operator's context lengths.
        let available = Set(listed.map(\.id))
        return ModelCatalogue(models: configured.filter { available.contains($0.id) }, source: .upstream, entries: entries)
    }

    public func contains(_ id: String) -> Bool { models.contains { $0.id == id } }

    /// What `key` may use: its own `models` narrow the list.
    public func models(for key: GatewayConfig.APIKey?) -> [GatewayConfig.Model] {
        guard let own = key?.models, !own.isEmpty else { return models }
        return models.filter { own.contains($0.id) }
    }

    /// `GET /v1/models` for `key`: the upstream's entries of the models it
    /// may use (built ones when the upstream's list could not be had).
    public func openAIList(for key: GatewayConfig.APIKey?) -> JSON {
        ["object": "list", "data": .array(models(for: key).map { m in
            entries[m.id] ?? ["id": .string(m.id), "object": "model", "created": 0, "owned_by": "moonshot",
                              "context_length": .number(m.contextLength)]
        })]
    }
}
