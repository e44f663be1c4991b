import KimiCore

/// What one chat request used, gathered while it runs and written to the
/// usage journal when it ends (`Gateway.handle`, before the response ends).
/// Set once the request is about to go upstream (`validatedChat`): refused
/// and malformed requests leave no row.
final class UsageCapture {
    let model: String
    let stream: Bool
    /// Characters of the prompt, for the estimate when no usage came.
    let promptCharacters: Int
    /// The upstream's usage, when it sent one.
    var usage: JSON? { didSet { reportedCache = nil } }
    /// Its token counts, read out of the JSON once for the ledger's row,
    /// the token limit's settlement and the metrics (~670 instructions a
    /// reader: callgrind, bench 2d).
    var reported: ReportedTokens? {
        if let cached = reportedCache { return cached }
        let r = usage.map(ReportedTokens.init)
        reportedCache = .some(r)
        return r
    }
    private var reportedCache: ReportedTokens??

    struct ReportedTokens {
        let prompt: Int, completion: Int, cached: Int?
        init(_ u: JSON) {
            prompt = u["prompt_tokens"]?.intValue ?? 0
            completion = u["completion_tokens"]?.intValue ?? 0
            cached = u["cached_tokens"]?.intValue ?? u["prompt_tokens_details"]?["cached_tokens"]?.intValue
        }
    }
    /// Content and reasoning deltas relayed to the client (streams).
    var relayedDeltas = 0
    var firstTokenNanos: UInt64?
    /// An error after the stream's head (the client saw an error event).
    var failed = false
    /// The tokens reserved under the token limit, settled when the request ends.
    var reservation: TokenReservation?

    struct TokenReservation {
        let key: UInt64
        let tokens: Int
        let policy: TokenGCRA
    }

    /// The documented prompt estimate where no usage came: a token per
    /// four characters (Kimi's tokenizer on English text; CJK text has
    /// more tokens per character, and the settlement charges the rest).
    static func estimatedPromptTokens(characters: Int) -> Int { max(1, (characters + 3) / 4) }

    /// Whether an upstream chunk carries answer text (a non-empty
    /// `content` or `reasoning_content`), on bytes, without parsing it.
    static func carriesText(_ data: String) -> Bool {
        // Per relayed event: a byte search (the array copies and slice
        // compares before cost ~14,000 instructions an event, bench 3b).
        data.containsBytes(#"content":""#, notFollowedBy: 0x22)
    }

    /// A record id that sorts by time: 12 hex digits of the end's Unix ms,
    /// then 16 of a per-process random sequence (`RequestID.fresh`, unique
    /// per process). The ledger's primary-key index then grows at its end;
    /// with random ids every insert touched its own B-tree page, and the
    /// drain wrote a WAL page per row (perf: SQLite and the kernel's copying
    /// were most of the ledger's cost).
    static func recordID(endUnixMs: Int64) -> String {
        RequestID.fresh(after: UInt64(max(0, endUnixMs)), digits: 12)
    }

    init(model: String, stream: Bool, promptCharacters: Int) {
        self.model = model
        self.stream = stream
        self.promptCharacters = promptCharacters
    }

    /// The ledger's row. Tokens are the upstream's when it reported usage;
    /// otherwise, for a stream the client left, the documented estimate:
    /// prompt tokens = prompt characters / 4 (at least 1), completion
    /// tokens = deltas relayed (Kimi streams about one token per delta),
    /// `estimated: true`. An upstream error without usage is not billed by
    /// Kimi: zero tokens.
    func record(requestID: String, key: GatewayConfig.APIKey?, client: String, route: String, status: Int,
                clientLeft: Bool, startNanos: UInt64, endNanos: UInt64, startUnixMs: Int64,
                upstreamKey: String = "", attempts: Int = 1) -> UsageRecord
    {
        let t = tokens(status: status, clientLeft: clientLeft)
        return UsageRecord(
            recordID: Self.recordID(endUnixMs: startUnixMs + Int64((endNanos &- startNanos) / 1_000_000)), at: startUnixMs, requestID: requestID,
            keyName: key?.name ?? "", keyFingerprint: key?.fingerprint ?? "",
            client: client, route: route, model: model, promptTokens: t.prompt, completionTokens: t.completion,
            cachedTokens: t.cached, status: status, stream: stream, outcome: t.outcome, estimated: t.estimated,
            durationMs: Int((endNanos &- startNanos) / 1_000_000),
            firstTokenMs: firstTokenNanos.map { Int(($0 &- startNanos) / 1_000_000) }, upstreamKey: upstreamKey, attempts: attempts)
    }

    /// The tokens the row and the token limit's settlement charge (see
    /// `record`); the settlement alone needs no row, so no strings.
    func tokens(status: Int, clientLeft: Bool) -> (outcome: UsageRecord.Outcome, prompt: Int, completion: Int, cached: Int?, estimated: Bool) {
        let outcome: UsageRecord.Outcome = clientLeft && stream ? .clientLeft
            : (failed || status >= 400 ? .upstreamError : .completed)
        if let t = reported { return (outcome, t.prompt, t.completion, t.cached, false) }
        if outcome == .clientLeft || outcome == .completed {
            return (outcome, Self.estimatedPromptTokens(characters: promptCharacters), relayedDeltas, nil, true)
        }
        return (outcome, 0, 0, nil, false)
    }
}
