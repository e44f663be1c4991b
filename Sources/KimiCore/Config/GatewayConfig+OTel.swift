/// The `otel.*` keys' cross-checks and derived values (`validated()`).
extension GatewayConfig.OTel {
    /// Resolves where spans go, the sampler, the headers and the resource
    /// (the operator's attributes, `service.name` from `serviceName` first).
    /// Off (no URL) when disabled or when neither endpoint is set.
    func resolved() throws(ConfigError) -> GatewayConfig.OTel {
        var o = self
        o.parsedSampler = try TraceSampler.parse(sampler, arg: samplerArg, key: "otel.sampler")
        o.parsedHeaders = try Self.pairs(headers, key: "otel.headers").map { "\($0.0): \($0.1)" }
        for h in o.parsedHeaders where !HeaderSafety.isSafe(h) {
            throw ConfigError("otel.headers", "holds a value a header cannot carry (control characters)")
        }
        var resource: [SpanAttribute] = []
        for (k, v) in try Self.pairs(resourceAttributes, key: "otel.resourceAttributes") where k != "service.name" || serviceName.isEmpty {
            resource.append(.string(k, v))
        }
        resource.removeAll { $0.key == "service.name" && !serviceName.isEmpty }
        if !serviceName.isEmpty { resource.insert(.string("service.name", serviceName), at: 0) }
        // service.version and the telemetry.sdk.* attributes are the exporter's (it knows the version).
        o.resource = resource
        var url = tracesEndpoint.trimmingSpaces()
        if url.isEmpty, !endpoint.trimmingSpaces().isEmpty {
            var base = endpoint.trimmingSpaces()
            while base.hasSuffix("/") { base.removeLast() }
            url = base + "/v1/traces"
        }
        if !url.isEmpty {
            let key = tracesEndpoint.isEmpty ? "otel.endpoint" : "otel.tracesEndpoint"
            guard URLParts(url) != nil else {
                throw ConfigError(key, "must be an absolute http(s) URL, got \"\(HeaderSafety.printable(url, max: 80))\"")
            }
        }
        o.tracesURL = disabled ? "" : url
        guard maxExportBatchSize <= maxQueueSize else {
            throw ConfigError("otel.maxExportBatchSize", "must not exceed otel.maxQueueSize (\(maxQueueSize))")
        }
        return o
    }

    /// `a=b,c=d` with percent-encoded values (W3C Baggage's list form, which
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES` use).
    static func pairs(_ text: String, key: String) throws(ConfigError) -> [(String, String)] {
        var out: [(String, String)] = []
        for item in text.split(separator: ",") {
            let t = String(item).trimmingSpaces()
            if t.isEmpty { continue }
            guard let eq = t.firstIndex(of: "="), eq != t.startIndex else {
                throw ConfigError(key, "must be name=value pairs separated by commas, got \"\(HeaderSafety.printable(t, max: 40))\"")
            }
            let name = String(t[..<eq]).trimmingSpaces()
            guard let value = percentDecoded(String(t[t.index(after: eq)...]).trimmingSpaces()) else {
                throw ConfigError(key, "has a badly percent-encoded value for \(HeaderSafety.printable(name, max: 40))")
            }
            out.append((name, value))
        }
        return out
    }

    static func percentDecoded(_ s: String) -> String? {
        guard s.utf8.contains(0x25) else { return s }
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            guard c == 0x25 else { out.append(c); continue }
            guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            it = it.dropFirst(2)
        }
        return String(validating: out, as: UTF8.self)
    }
}

extension OTLPEncoding.Format {
    static func parse(_ v: String, key: String) throws(ConfigError) -> Self {
        let t = v.trimmingSpaces().lowercased()
        if let f = Self(rawValue: t) { return f }
        if t == "grpc" { throw ConfigError(key, "grpc is not supported: use http/protobuf (port 4318) or http/json") }
        throw ConfigError(key, "must be http/protobuf or http/json, got \"\(HeaderSafety.printable(v, max: 40))\"")
    }
}
