/// Which requests are traced: the OpenTelemetry SDK's built-in samplers by
/// their `OTEL_TRACES_SAMPLER` names (SDK environment variables spec,
/// "General SDK Configuration"), the ratio from `OTEL_TRACES_SAMPLER_ARG`.
public enum TraceSampler: Sendable, Equatable {
    case alwaysOn
    case alwaysOff
    /// The trace id decides, so every hop of a trace with this ratio agrees.
    case ratio(Double)
    /// A request that came with a `traceparent` follows its sampled flag;
    /// one without is decided by `root`.
    indirect case parentBased(root: TraceSampler)

    /// The sampler for an `OTEL_TRACES_SAMPLER` name and its argument. A
    /// ratio's argument is 0...1 and defaults to 1.0 (the spec's default).
    public static func parse(_ name: String, arg: String, key: String) throws(ConfigError) -> TraceSampler {
        func ratio() throws(ConfigError) -> Double {
            let t = arg.trimmingSpaces()
            if t.isEmpty { return 1.0 }
            guard let r = Double(t), r >= 0, r <= 1 else {
                throw ConfigError(key + "Arg", "must be a ratio from 0 to 1, got \"\(HeaderSafety.printable(t, max: 40))\"")
            }
            return r
        }
        switch name.trimmingSpaces().lowercased() {
        case "always_on": return .alwaysOn
        case "always_off": return .alwaysOff
        case "traceidratio": return .ratio(try ratio())
        case "parentbased_always_on", "": return .parentBased(root: .alwaysOn)
        case "parentbased_always_off": return .parentBased(root: .alwaysOff)
        case "parentbased_traceidratio": return .parentBased(root: .ratio(try ratio()))
        default:
            throw ConfigError(key, "must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, got \"\(HeaderSafety.printable(name, max: 40))\"")
        }
    }

    /// Whether a request of trace `traceLow` (the id's low 8 bytes, whose
    /// randomness W3C Trace Context Level 2 guarantees) with parent
    /// `parent` is sampled.
    public func sample(parent: TraceContext?, traceLow: UInt64) -> Bool {
        switch self {
        case .alwaysOn: return true
        case .alwaysOff: return false
        case let .ratio(r):
            if r >= 1 { return true }
            if r <= 0 { return false }
            // The low 63 bits against the ratio's share of them: the same id gives the same answer everywhere.
            return Double(traceLow & 0x7FFF_FFFF_FFFF_FFFF) < r * 9_223_372_036_854_775_808.0
        case let .parentBased(root):
            if let parent { return parent.sampled }
            return root.sample(parent: nil, traceLow: traceLow)
        }
    }
}
