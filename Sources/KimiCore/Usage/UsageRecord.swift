/// One chat request as the usage ledger keeps it (issue #12): who, what,
/// how many tokens, how it ended. Never the key itself: its name and
/// fingerprint.
public struct UsageRecord: Equatable, Sendable {
    public enum Outcome: String, Sendable, CaseIterable {
        case completed
        /// The client left mid-stream; the upstream was cancelled.
        case clientLeft = "client_left"
        case upstreamError = "upstream_error"
        /// Refused by the gateway (limit, budget) before the upstream.
        case rejected
    }

    /// Unique per record and process lifetime: the ledger's key, so a
    /// record replayed twice is stored once.
    public var recordID: String
    /// Unix milliseconds at the request's start.
    public var at: Int64
    public var requestID: String
    public var keyName: String
    public var keyFingerprint: String
    public var client: String
    public var route: String
    public var model: String
    public var promptTokens: Int
    public var completionTokens: Int
    public var cachedTokens: Int?
    public var status: Int
    public var stream: Bool
    public var outcome: Outcome
    /// Tokens estimated by the gateway (the upstream sent no usage).
    public var estimated: Bool
    public var durationMs: Int
    public var firstTokenMs: Int?

    public var totalTokens: Int { promptTokens + completionTokens }

    public init(recordID: String, at: Int64, requestID: String, keyName: String, keyFingerprint: String, client: String,
                route: String, model: String, promptTokens: Int, completionTokens: Int, cachedTokens: Int? = nil,
                status: Int, stream: Bool, outcome: Outcome, estimated: Bool, durationMs: Int, firstTokenMs: Int? = nil)
    {
        self.recordID = recordID
        self.at = at
        self.requestID = requestID
        self.keyName = keyName
        self.keyFingerprint = keyFingerprint
        self.client = client
        self.route = route
        self.model = model
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
        self.status = status
        self.stream = stream
        self.outcome = outcome
        self.estimated = estimated
        self.durationMs = durationMs
        self.firstTokenMs = firstTokenMs
    }

    /// One journal line: JSON on one line (the serializer never writes a raw newline).
    public var journalLine: [UInt8] {
        var o: [(String, JSON)] = [
            ("id", .string(recordID)), ("at", .number(String(at))), ("rid", .string(requestID)),
            ("key", .string(keyName)), ("fp", .string(keyFingerprint)), ("client", .string(client)),
            ("route", .string(route)), ("model", .string(model)),
            ("prompt", .number(String(promptTokens))), ("completion", .number(String(completionTokens))),
            ("status", .number(String(status))), ("stream", .bool(stream)), ("outcome", .string(outcome.rawValue)),
            ("estimated", .bool(estimated)), ("ms", .number(String(durationMs))),
        ]
        if let cachedTokens { o.append(("cached", .number(String(cachedTokens)))) }
        if let firstTokenMs { o.append(("ttft", .number(String(firstTokenMs)))) }
        return JSON.object(o).serializedBytes() + [0x0A]
    }

    /// A journal line back; nil for a torn or foreign line.
    public init?(journalLine line: [UInt8]) {
        guard let j = try? JSON.parse(line), let id = j["id"]?.stringValue, let at = j["at"]?.intValue,
              let outcome = j["outcome"]?.stringValue.flatMap(Outcome.init(rawValue:)) else { return nil }
        self.init(recordID: id, at: Int64(at), requestID: j["rid"]?.stringValue ?? "", keyName: j["key"]?.stringValue ?? "",
                  keyFingerprint: j["fp"]?.stringValue ?? "", client: j["client"]?.stringValue ?? "",
                  route: j["route"]?.stringValue ?? "", model: j["model"]?.stringValue ?? "",
                  promptTokens: j["prompt"]?.intValue ?? 0, completionTokens: j["completion"]?.intValue ?? 0,
                  cachedTokens: j["cached"]?.intValue, status: j["status"]?.intValue ?? 0,
                  stream: j["stream"]?.boolValue ?? false, outcome: outcome, estimated: j["estimated"]?.boolValue ?? false,
                  durationMs: j["ms"]?.intValue ?? 0, firstTokenMs: j["ttft"]?.intValue)
    }
}

/// The pure half of the journal: the complete records in a journal's bytes.
/// A line counts once it ends in a newline; a torn last line (a process
/// killed mid-write) is left for later or for nobody, and a complete line
/// that does not parse is skipped (counted) rather than blocking the rest.
public enum JournalLines {
    public static func records(in bytes: ArraySlice<UInt8>) -> (records: [UsageRecord], consumed: Int, skipped: Int) {
        var records: [UsageRecord] = []
        var skipped = 0
        var start = bytes.startIndex
        var consumed = 0
        while let nl = bytes[start...].firstIndex(of: 0x0A) {
            if let r = UsageRecord(journalLine: Array(bytes[start..<nl])) { records.append(r) } else { skipped += 1 }
            start = nl + 1
            consumed = start - bytes.startIndex
        }
        return (records, consumed, skipped)
    }
}
