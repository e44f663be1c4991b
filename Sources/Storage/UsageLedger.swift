import KimiCore

/// The usage ledger in the gateway's database (issue #12). Writes come from
/// the journals (`UsageJournal.drain`), never from the request path.
public final class UsageLedger: @unchecked Sendable {
    let db: SQLiteDatabase

    public init(database: SQLiteDatabase) throws {
        db = database
        try Schema.migrate(db)
    }

    /// Stores the records in one transaction; a record already stored
    /// (same `recordID`: a replayed journal line) is ignored. Returns how
    /// many were new.
    @discardableResult
    public func insert(_ records: [UsageRecord]) throws -> Int {
        guard !records.isEmpty else { return 0 }
        return try db.transaction { tx in
            var added = 0
            for r in records {
                try tx.query("""
                    INSERT OR IGNORE INTO usage (record_id, at, request_id, key_name, key_fingerprint, client, route, model,
                        prompt_tokens, completion_tokens, total_tokens, cached_tokens, status, stream, outcome, estimated,
                        duration_ms, first_token_ms)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                    """, [.text(r.recordID), .int(r.at), .text(r.requestID), .text(r.keyName), .text(r.keyFingerprint),
                          .text(r.client), .text(r.route), .text(r.model), .int(Int64(r.promptTokens)),
                          .int(Int64(r.completionTokens)), .int(Int64(r.totalTokens)), r.cachedTokens.map { .int(Int64($0)) } ?? .null,
                          .int(Int64(r.status)), .int(r.stream ? 1 : 0), .text(r.outcome.rawValue), .int(r.estimated ? 1 : 0),
                          .int(Int64(r.durationMs)), r.firstTokenMs.map { .int(Int64($0)) } ?? .null])
                added += tx.changes
            }
            return added
        }
    }

    public struct Totals: Equatable, Sendable {
        public var requests = 0
        public var promptTokens = 0
        public var completionTokens = 0
        public var totalTokens = 0
        public var estimatedRequests = 0
    }

    /// Totals over `[from, to)` (unix ms), for one key fingerprint or all.
    public func totals(from: Int64, to: Int64, keyFingerprint: String? = nil) throws -> Totals {
        let rows = try db.query("""
            SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(total_tokens), 0),
                   COALESCE(SUM(estimated), 0)
            FROM usage WHERE at >= ?1 AND at < ?2 AND (?3 IS NULL OR key_fingerprint = ?3)
            """, [.int(from), .int(to), keyFingerprint.map { .text($0) } ?? .null])
        guard let r = rows.first, r.count == 5 else { return Totals() }
        return Totals(requests: Int(r[0].int ?? 0), promptTokens: Int(r[1].int ?? 0), completionTokens: Int(r[2].int ?? 0),
                      totalTokens: Int(r[3].int ?? 0), estimatedRequests: Int(r[4].int ?? 0))
    }
}
