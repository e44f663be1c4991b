/// The metric families the gateway exports and their rendering
/// in the Prometheus text format 0.0.4. The shared table (`MappedMetricsStore`)
/// holds each series as the text it is printed with and one 64-bit word;
/// histograms keep per-bucket counts (not cumulative: one atomic add per
/// observation) and their sum in microseconds, and are made cumulative here.
public enum PrometheusText {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    public struct Family: Sendable {
        public let name: String
        public let help: String
        public let kind: Kind
    }

    public static let prefix = "kimi_gateway_"

    /// Upper bounds in seconds, shared by every duration histogram: from a
    /// health check (sub-millisecond) to a long generation (minutes).
    public static let durationBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    public static let families: [Family] = [
        .init(name: "requests_total", help: "Requests answered, by route pattern, method and status.", kind: .counter),
        .init(name: "request_duration_seconds", help: "Time from the request's head to its last byte, by route pattern.", kind: .histogram),
        .init(name: "upstream_duration_seconds", help: "Time of the upstream call (all attempts), by model.", kind: .histogram),
        .init(name: "time_to_first_token_seconds", help: "Time from the request to the first token relayed, streams, by model.", kind: .histogram),
        .init(name: "tokens_total", help: "Tokens used, by model and kind (prompt, completion).", kind: .counter),
        .init(name: "rate_limited_total", help: "Requests refused by a limit, by policy (requests, tokens, budget).", kind: .counter),
        .init(name: "stream_client_left_total", help: "Streams whose client left before the end (the upstream was cancelled).", kind: .counter),
        .init(name: "upstream_errors_total", help: "Upstream attempts that failed, by type.", kind: .counter),
        .init(name: "upstream_retries_total", help: "Upstream attempts after the first.", kind: .counter),
        .init(name: "in_flight_requests", help: "Requests being answered now, on every process.", kind: .gauge),
        .init(name: "worker_threads", help: "Worker threads of every process.", kind: .gauge),
        .init(name: "worker_restarts_total", help: "Worker processes the supervisor restarted.", kind: .counter),
        .init(name: "limiter_table_used_slots", help: "Slots in use in the shared rate-limit table.", kind: .gauge),
        .init(name: "state_fallbacks_total", help: "Limit and key-health decisions the machine's file made because Redis did not answer (state.backend redis).", kind: .counter),
        .init(name: "config_reloads_total", help: "Config reloads, by result (ok, rejected).", kind: .counter),
        .init(name: "otel_spans_exported_total", help: "Spans the OTLP exporter delivered (the collector answered 2xx).", kind: .counter),
        .init(name: "otel_spans_dropped_total", help: "Spans never delivered, by reason (queue_full: the process's queue was at otel.maxQueueSize; export_failed: the collector failed or did not answer in otel.timeoutMs).", kind: .counter),
        .init(name: "build_info", help: "The running version (always 1).", kind: .gauge),
    ]

    /// A label value as the format wants it: backslash, quote and newline escaped.
    public static func escape(_ v: String) -> String {
        var out = ""
        for c in v.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `name{a="x",b="y"}` (the prefix added).
    public static func series(_ name: String, _ labels: [(String, String)] = []) -> String {
        guard !labels.isEmpty else { return prefix + name }
        return prefix + name + "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// The le label of a bucket for `seconds`: the first bound it fits, else +Inf.
    public static func bucket(_ seconds: Double) -> String { bucketLabel(bucketIndex(seconds)) }

    /// The index of the first bound `seconds` fits (`durationBuckets.count`: +Inf).
    public static func bucketIndex(_ seconds: Double) -> Int {
        durationBuckets.firstIndex { seconds <= $0 } ?? durationBuckets.count
    }

    /// Bucket labels by index, formatted once.
    static let bucketLabels = durationBuckets.map(format) + ["+Inf"]
    public static func bucketLabel(_ index: Int) -> String { bucketLabels[min(max(0, index), bucketLabels.count - 1)] }

    static func format(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    /// The exposition of the stored series: gauges are two's-complement
    /// words, `_sum` of histograms microseconds.
    public static func render(_ stored: [(text: String, value: UInt64)]) -> String {
        // name (without prefix) → [(labels, value)]
        var byName: [String: [(labels: String, value: UInt64)]] = [:]
        for (text, value) in stored where text.hasPrefix(prefix) {
            let body = text.dropFirst(prefix.count)
            let brace = body.firstIndex(of: "{")
            let name = String(brace.map { body[..<$0] } ?? body)
            let labels = brace.map { String(body[body.index(after: $0)..<(body.index(before: body.endIndex))]) } ?? ""
            byName[name, default: []].append((labels, value))
        }
        var out = ""
        for f in families {
            switch f.kind {
            case .counter, .gauge:
                guard let rows = byName[f.name], !rows.isEmpty else { continue }
                out += "# HELP \(prefix)\(f.name) \(f.help)\n# TYPE \(prefix)\(f.name) \(f.kind.rawValue)\n"
                for r in rows.sorted(by: { $0.labels < $1.labels }) {
                    let v = f.kind == .gauge ? String(Int64(bitPattern: r.value)) : String(r.value)
                    out += prefix + f.name + (r.labels.isEmpty ? "" : "{\(r.labels)}") + " " + v + "\n"
                }
            case .histogram:
                guard let buckets = byName[f.name + "_bucket"], !buckets.isEmpty else { continue }
                out += "# HELP \(prefix)\(f.name) \(f.help)\n# TYPE \(prefix)\(f.name) histogram\n"
                let sums = Dictionary((byName[f.name + "_sum"] ?? []).map { ($0.labels, $0.value) }, uniquingKeysWith: +)
                // Group the buckets by their labels without le.
                var groups: [String: [String: UInt64]] = [:]
                for b in buckets {
                    let (rest, le) = splitLE(b.labels)
                    groups[rest, default: [:]][le, default: 0] += b.value
                }
                for (labels, counts) in groups.sorted(by: { $0.key < $1.key }) {
                    var cumulative: UInt64 = 0
                    let lead = labels.isEmpty ? "" : labels + ","
                    for b in durationBuckets {
                        cumulative += counts[format(b)] ?? 0
                        out += "\(prefix)\(f.name)_bucket{\(lead)le=\"\(format(b))\"} \(cumulative)\n"
                    }
                    cumulative += counts["+Inf"] ?? 0
                    out += "\(prefix)\(f.name)_bucket{\(lead)le=\"+Inf\"} \(cumulative)\n"
                    let wrapped = labels.isEmpty ? "" : "{\(labels)}"
                    out += "\(prefix)\(f.name)_sum\(wrapped) \(Double(sums[labels] ?? 0) / 1_000_000)\n"
                    out += "\(prefix)\(f.name)_count\(wrapped) \(cumulative)\n"
                }
            }
        }
        return out
    }

    /// `a="x",le="0.5"` → (`a="x"`, `0.5`); le is always the last label.
    static func splitLE(_ labels: String) -> (String, String) {
        let b = Array(labels.utf8)
        let needle = Array("le=\"".utf8)
        guard b.count > needle.count else { return (labels, "+Inf") }
        var i = b.count - needle.count
        while i >= 0 {
            if b[i..<(i + needle.count)].elementsEqual(needle), i == 0 || b[i - 1] == 0x2C {
                let rest = String(decoding: b[..<max(0, i - 1)], as: UTF8.self)
                return (rest, String(decoding: b[(i + needle.count)..<(b.count - 1)], as: UTF8.self))
            }
            i -= 1
        }
        return (labels, "+Inf")
    }
}
