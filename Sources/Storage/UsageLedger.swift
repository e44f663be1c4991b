import KimiCore

/// The usage ledger in the gateway's database. Writes come from
/// the journals (`UsageJournal.drain`), never from the request path.
public final class UsageLedger: @unchecked Sendable {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) throws {
        db = database
        try Schema.migrate(db)
    }

    /// Stores the records in one transaction. `replayed`: records from a
    /// journal a dead process left, some of which it may have stored
    /// before it died — each is checked (by time and id, through
    /// `usage_at`) and stored only if absent. A live process's own drain
    /// never offers a record twice (`UsageJournal.drain` is serialized and
    /// moves past what it stored), so it skips the check. Returns how many
    /// were new.
    @discardableResult
    public func insert(_ records: [UsageRecord], replayed: Bool = false) throws -> Int {
        let bytes = records.flatMap(\.journalLine)
        return try bytes.withUnsafeBufferPointer { try insert(JournalLines.fields(in: $0).lines, replayed: replayed) }
    }

    /// The same from journal lines, their text bound in place (no String,
    /// no copy by SQLite) while the bytes they slice are alive, as they are
    /// for this call.
    @discardableResult
    public func insert(_ lines: [JournalFields], replayed: Bool = false) throws -> Int {
        guard !lines.isEmpty else { return 0 }
        return try db.transaction { tx in
            let columns = """
                record_id, at, request_id, key_name, key_fingerprint, client, route, model, prompt_tokens, completion_tokens,
                total_tokens, cached_tokens, status, stream, outcome, estimated, duration_ms, first_token_ms, upstream_key, attempts, clamped,
                session, cost_micros
                """
            let values = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23"
            let insert = try tx.statement(replayed
                ? "INSERT INTO usage (\(columns)) SELECT \(values) WHERE NOT EXISTS (SELECT 1 FROM usage WHERE at = ?2 AND record_id = ?1)"
                : "INSERT INTO usage (\(columns)) VALUES (\(values))")
            defer { insert.clearBindings() }
            typealias F = JournalFields
            var added = 0
            for f in lines {
                // Parameters 1–10 are fields 1–10, 11 the total, 12–20 fields 11–19.
                func text(_ parameter: Int32, _ field: Int) {
                    if f.isPlain(field) { insert.bindInPlace(parameter, f[field]) } else { insert.bind(parameter, f.unescaped(field)) }
                }
                text(1, F.recordID); insert.bind(2, f.number(F.at)!); text(3, F.requestID); text(4, F.keyName)
                text(5, F.keyFingerprint); text(6, F.client); text(7, F.route); text(8, F.model)
                let prompt = f.number(F.promptTokens)!, completion = f.number(F.completionTokens)!
                insert.bind(9, prompt); insert.bind(10, completion); insert.bind(11, prompt &+ completion)
                insert.bind(12, f.int(F.cachedTokens)); insert.bind(13, f.number(F.status)!); insert.bind(14, f.number(F.stream)!)
                text(15, F.outcome); insert.bind(16, f.number(F.estimated)!); insert.bind(17, f.number(F.durationMs)!)
                insert.bind(18, f.int(F.firstTokenMs))
                if f.hasUpstreamKey { text(19, F.upstreamKey); insert.bind(20, f.number(F.attempts) ?? 1) } else { insert.bindInPlace(19, F.Field(start: nil, count: 0)); insert.bind(20, Int64(1)) }
                insert.bind(21, f.number(F.clamped) ?? 0)
                text(22, F.session) // "" before U4 (a missing field reads empty)
                insert.bind(23, f.int(F.costMicros)) // NULL before U5
                added += try insert.run()
            }
            return added
        }
    }

    /// A column's sum that cannot fail: SQLite's `SUM` of integers raises
    /// "integer overflow" (a month's report answered 503 after one row of
    /// 10^18 tokens), `TOTAL` sums in floating point; negative rows (none
    /// since counts are clamped, but an older ledger may hold them) count
    /// as 0, and the result is held below 2^62.
    static func sum(_ column: String) -> String {
        "CAST(MIN(TOTAL(MAX(COALESCE(\(column), 0), 0)), 4.0e18) AS INTEGER)"
    }

    public struct Totals: Equatable, Sendable {
        public var requests = 0
        public var promptTokens = 0
        public var completionTokens = 0
        public var totalTokens = 0
        public var estimatedRequests = 0
        public init(requests: Int = 0, promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int = 0, estimatedRequests: Int = 0) {
            self.requests = requests
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
            self.totalTokens = totalTokens
            self.estimatedRequests = estimatedRequests
        }
    }

    /// Totals over `[from, to)` (unix ms), for one key fingerprint or all.
    public func totals(from: Int64, to: Int64, keyFingerprint: String? = nil) throws -> Totals {
        let rows = try db.query("""
            SELECT COUNT(*), \(Self.sum("prompt_tokens")), \(Self.sum("completion_tokens")), \(Self.sum("total_tokens")),
                   COALESCE(SUM(estimated), 0)
            FROM usage WHERE at >= ?1 AND at < ?2 AND (?3 IS NULL OR key_fingerprint = ?3)
            """, [.int(from), .int(to), keyFingerprint.map { .text($0) } ?? .null])
        guard let r = rows.first, r.count == 5 else { return Totals() }
        return Totals(requests: Int(r[0].int ?? 0), promptTokens: Int(r[1].int ?? 0), completionTokens: Int(r[2].int ?? 0),
                      totalTokens: Int(r[3].int ?? 0), estimatedRequests: Int(r[4].int ?? 0))
    }

    /// The newest row (SQLite rowid; rows only ever get larger ones: none is deleted).
    public func lastRowID() throws -> Int64 {
        try db.query("SELECT COALESCE(MAX(rowid), 0) FROM usage").first?.first?.int ?? 0
    }

    /// Each key fingerprint's counts over `[from, to)`, rows up to `rowID`.
    public func countsByKey(from: Int64, to: Int64, upTo rowID: Int64) throws -> [String: UsageCounts] {
        var out: [String: UsageCounts] = [:]
        for r in try db.query("""
            SELECT key_fingerprint, COUNT(*), \(Self.sum("prompt_tokens")), \(Self.sum("completion_tokens")), \(Self.sum("total_tokens")),
                   \(Self.sum("cost_micros"))
            FROM usage WHERE at >= ?1 AND at < ?2 AND rowid <= ?3 GROUP BY key_fingerprint
            """, [.int(from), .int(to), .int(rowID)]) where r.count == 6
        {
            out[r[0].text ?? ""] = UsageCounts(requests: Int(r[1].int ?? 0), promptTokens: Int(r[2].int ?? 0),
                                                completionTokens: Int(r[3].int ?? 0), totalTokens: Int(r[4].int ?? 0),
                                                costMicros: Int(r[5].int ?? 0))
        }
        return out
    }

    /// What rows `(after, upTo]` add to each key's day and month, summed by
    /// SQLite: one result row per key (and day or not), however many
    /// requests the other processes stored (per-row reading was the book's
    /// whole cost at thousands of requests a second).
    public func added(after: Int64, upTo: Int64, day: UsagePeriod, month: UsagePeriod) throws -> [(fingerprint: String, inDay: Bool, counts: UsageCounts)] {
        try db.query("""
            SELECT key_fingerprint, at >= ?3 AND at < ?4, COUNT(*), \(Self.sum("prompt_tokens")), \(Self.sum("completion_tokens")), \(Self.sum("total_tokens")),
                   \(Self.sum("cost_micros"))
            FROM usage WHERE rowid > ?1 AND rowid <= ?2 AND at >= ?5 AND at < ?6 GROUP BY 1, 2
            """, [.int(after), .int(upTo), .int(day.from), .int(day.to), .int(month.from), .int(month.to)]).compactMap { r in
            guard r.count == 7 else { return nil }
            return (r[0].text ?? "", r[1].int == 1,
                    UsageCounts(requests: Int(r[2].int ?? 0), promptTokens: Int(r[3].int ?? 0), completionTokens: Int(r[4].int ?? 0),
                                totalTokens: Int(r[5].int ?? 0), costMicros: Int(r[6].int ?? 0)))
        }
    }

    /// When each key fingerprint was last used since `since` (Unix ms; the
    /// `usage_at` index bounds the scan).
    public func lastUsed(since: Int64) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for r in try db.query("SELECT key_fingerprint, MAX(at) FROM usage WHERE at >= ?1 GROUP BY key_fingerprint", [.int(since)]) where r.count == 2 {
            if let fp = r[0].text, let at = r[1].int { out[fp] = at }
        }
        return out
    }

    public enum Grouping: String, CaseIterable, Sendable {
        case key, model, day
    }

    /// One group's sums for one model (cost is per model: the caller prices and merges).
    public struct ReportRow: Equatable, Sendable {
        public var group: String
        public var model: String
        public var totals: Totals
        public var cachedTokens: Int
    }

    /// Sums over `[from, to)` by key (its name; the fingerprint when unnamed), model or UTC day.
    /// `keyFingerprint`: only that key's rows (a key's tokens per day, for the admin console).
    public func report(from: Int64, to: Int64, groupBy: Grouping, keyFingerprint: String? = nil) throws -> [ReportRow] {
        let group: String
        switch groupBy {
        case .key: group = "CASE WHEN key_name = '' THEN CASE WHEN key_fingerprint = '' THEN '(no key)' ELSE key_fingerprint END ELSE key_name END"
        case .model: group = "model"
        case .day: group = "strftime('%Y-%m-%d', at / 1000, 'unixepoch')"
        }
        return try db.query("""
            SELECT \(group) AS g, model, COUNT(*), \(Self.sum("prompt_tokens")), \(Self.sum("completion_tokens")), \(Self.sum("total_tokens")), SUM(estimated),
                   \(Self.sum("cached_tokens"))
            FROM usage WHERE at >= ?1 AND at < ?2 AND (?3 IS NULL OR key_fingerprint = ?3) GROUP BY g, model ORDER BY g, model
            """, [.int(from), .int(to), keyFingerprint.map { .text($0) } ?? .null]).compactMap { r in
            guard r.count == 8 else { return nil }
            return ReportRow(group: r[0].text ?? "", model: r[1].text ?? "",
                             totals: Totals(requests: Int(r[2].int ?? 0), promptTokens: Int(r[3].int ?? 0),
                                            completionTokens: Int(r[4].int ?? 0), totalTokens: Int(r[5].int ?? 0),
                                            estimatedRequests: Int(r[6].int ?? 0)),
                             cachedTokens: Int(r[7].int ?? 0))
        }
    }
}
