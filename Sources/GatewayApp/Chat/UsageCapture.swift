import KimiCore

/// What one chat request used, gathered while it runs and written to the
/// usage journal when it ends (`Gateway.handle`, before the response ends).
/// Set once the request is about to go upstream (`validatedChat`): refused
/// and malformed requests leave no row.
final class UsageCapture {
    let model: String
    let stream: Bool
    /// The prompt's estimate (`PromptEstimate`), for the reservations and
    /// for the row when no usage came.
    let promptTokens: Int
    /// The most tokens a count of this request can be: the model's context
    /// plus its completion tokens (`ReportedTokens` clamps to it).
    let tokenBound: Int
    /// What the admission reserved: prompt estimate + max tokens per choice.
    var reservedTokens = 0
    /// The upstream's usage, when it sent one.
    var usage: JSON? { didSet { reportedCache = nil } }
    /// The prompt's count from the upstream before its answer's usage came
    /// (Anthropic's `message_start`): an estimated row uses it instead of
    /// the gateway's own estimate.
    var upstreamPromptTokens: Int?
    /// The client's session id (Claude Code's `X-Claude-Code-Session-Id`), for the row.
    var session = ""
    /// Its token counts, clamped, read out of the JSON once for the
    /// ledger's row, the settlements and the metrics (~670 instructions a
    /// reader: callgrind, bench 2d).
    var reported: ReportedTokens? {
        if let cached = reportedCache { return cached }
        let r = usage.map { ReportedTokens($0, bound: tokenBound) }
        reportedCache = .some(r)
        return r
    }
    private var reportedCache: ReportedTokens??

    /// The upstream answered, and the gateway did not pass the answer on
    /// (larger than the request could produce, not JSON): Kimi billed it,
    /// so the row charges the reservation rather than nothing.
    var answerDropped = false
    /// Text, reasoning and tool-call deltas the upstream sent (streams),
    /// relayed or not: Kimi bills them either way (`ChunkText`).
    var relayedDeltas = 0
    var firstTokenNanos: UInt64?
    /// An error after the stream's head (the client saw an error event).
    var failed = false
    /// The tokens reserved under the token limit, settled when the request ends.
    var reservation: TokenReservation?
    /// Unix ms at the request's start, fixed at admission: the provisional
    /// row and the final one share it and `recordID` (a replay tells them
    /// apart by the two).
    var startUnixMs: Int64?
    /// The provisional row's slot, cleared by the final row.
    var ticket: Int?
    /// The row's id, fixed when first asked for (at admission).
    private(set) lazy var recordID = Self.recordID(endUnixMs: Clock.wallMicros() / 1000)
    /// The tokens reserved in the key's budget counters, settled likewise.
    var budgetReservations: [BudgetReservation] = []

    /// Tokens or millionths of the currency reserved in one budget counter.
    struct BudgetReservation {
        let key: UInt64
        let period: Int64
        let measure: BudgetCounter.Measure
        let amount: Int
    }
    /// The model's price at admission (`upstream.prices`): the row's cost,
    /// and what money budgets are settled with. nil: unpriced.
    var price: GatewayConfig.Price?

    struct TokenReservation {
        let key: UInt64
        let tokens: Int
        let policy: TokenGCRA
    }

    /// A record id that sorts by time: 12 hex digits of the admission's Unix ms,
    /// then 16 of a per-process random sequence (`RequestID.fresh`, unique
    /// per process). The ledger's primary-key index then grows at its end;
    /// with random ids every insert touched its own B-tree page, and the
    /// drain wrote a WAL page per row (perf: SQLite and the kernel's copying
    /// were most of the ledger's cost).
    static func recordID(endUnixMs: Int64) -> String {
        RequestID.fresh(after: UInt64(max(0, endUnixMs)), digits: 12)
    }

    init(model: String, stream: Bool, promptTokens: Int, tokenBound: Int) {
        self.model = model
        self.stream = stream
        self.promptTokens = max(1, promptTokens)
        self.tokenBound = max(self.promptTokens, tokenBound)
    }

    /// The ledger's row. Tokens are the upstream's when it reported usage
    /// (clamped: `ReportedTokens`); otherwise, for a stream the client left,
    /// the estimate: the prompt's (`PromptEstimate`) and a completion token
    /// per text, reasoning or tool-call delta the upstream sent (Kimi
    /// streams about one token per delta), `estimated: true`; for an answer
    /// the gateway dropped, the reservation. An upstream error without
    /// usage is not billed by Kimi: zero tokens.
    func record(requestID: String, key: GatewayConfig.APIKey?, client: String, route: String, status: Int,
                clientLeft: Bool, startNanos: UInt64, endNanos: UInt64, startUnixMs: Int64,
                upstreamKey: String = "", attempts: Int = 1) -> UsageRecord
    {
        let t = tokens(status: status, clientLeft: clientLeft)
        return UsageRecord(
            recordID: recordID, at: startUnixMs, requestID: requestID,
            keyName: key?.name ?? "", keyFingerprint: key?.fingerprint ?? "",
            client: client, route: route, model: model, promptTokens: t.prompt, completionTokens: t.completion,
            cachedTokens: t.cached, status: status, stream: stream, outcome: t.outcome, estimated: t.estimated,
            durationMs: Int((endNanos &- startNanos) / 1_000_000),
            firstTokenMs: firstTokenNanos.map { Int(($0 &- startNanos) / 1_000_000) }, upstreamKey: upstreamKey, attempts: attempts,
            clamped: t.clamped, session: session, costMicros: price?.micros(prompt: t.prompt, cached: t.cached ?? 0, completion: t.completion))
    }

    /// The tokens the row and the token limit's settlement charge (see
    /// `record`); the settlement alone needs no row, so no strings.
    func tokens(status: Int, clientLeft: Bool) -> (outcome: UsageRecord.Outcome, prompt: Int, completion: Int, cached: Int?, estimated: Bool, clamped: Bool) {
        let outcome: UsageRecord.Outcome = clientLeft && stream ? .clientLeft
            : (failed || status >= 400 ? .upstreamError : .completed)
        if let t = reported { return (outcome, t.prompt, t.completion, t.cached, false, t.clamped) }
        if answerDropped {
            return (outcome, promptTokens, max(relayedDeltas, reservedTokens - promptTokens), nil, true, false)
        }
        if outcome == .clientLeft || outcome == .completed {
            let prompt = upstreamPromptTokens.map { min(max(0, $0), tokenBound) } ?? promptTokens
            return (outcome, prompt, min(relayedDeltas, tokenBound), nil, true, false)
        }
        return (outcome, 0, 0, nil, false, false)
    }

    /// The row written at admission, before anything goes upstream: what
    /// stays in the ledger if the process dies before the request ends
    /// (outcome `interrupted`, the reservation as its estimate).
    func provisional(requestID: String, key: GatewayConfig.APIKey?, client: String, route: String, startUnixMs: Int64) -> UsageRecord {
        UsageRecord(recordID: recordID, at: startUnixMs, requestID: requestID, keyName: key?.name ?? "", keyFingerprint: key?.fingerprint ?? "",
                    client: client, route: route, model: model, promptTokens: promptTokens,
                    completionTokens: max(0, reservedTokens - promptTokens), status: 0, stream: stream, outcome: .interrupted,
                    estimated: true, durationMs: 0, session: session,
                    costMicros: price?.worstMicros(prompt: promptTokens, completion: max(0, reservedTokens - promptTokens)))
    }
}
