import KimiCore
import Storage

/// The ledger summed over a range, one row per key, model or UTC day:
/// what `GET /api/admin/usage` answers and `kimi-gateway usage`
/// prints. Cost comes from `upstream.prices` (per million tokens), only
/// when prices are configured; a model without a price adds nothing to it
/// and is counted in `unpricedRequests`.
public struct UsageReport: Sendable {
    public struct Row: Sendable, Equatable {
        public var group: String
        public var totals = UsageLedger.Totals()
        public var cost: Double?
        public var unpricedRequests = 0
    }

    public let from: Int64
    public let to: Int64
    public let groupBy: UsageLedger.Grouping
    public let rows: [Row]

    public static func make(ledger: UsageLedger, from: Int64, to: Int64, groupBy: UsageLedger.Grouping,
                            prices: [String: GatewayConfig.Price], keyFingerprint: String? = nil) throws -> UsageReport
    {
        try make(ledgers: [ledger], from: from, to: to, groupBy: groupBy, prices: prices, keyFingerprint: keyFingerprint)
    }

    /// Several ledgers summed as one (a fleet's machines): their
    /// rows merged by group, in the group order one ledger has.
    public static func make(ledgers: [UsageLedger], from: Int64, to: Int64, groupBy: UsageLedger.Grouping,
                            prices: [String: GatewayConfig.Price], keyFingerprint: String? = nil) throws -> UsageReport
    {
        let priced = !prices.isEmpty
        var rows: [Row] = []
        var all = try ledgers.flatMap { try $0.report(from: from, to: to, groupBy: groupBy, keyFingerprint: keyFingerprint) }
        if ledgers.count > 1 { all.sort { $0.group < $1.group } }
        for r in all {
            if rows.last?.group != r.group { rows.append(Row(group: r.group, cost: priced ? 0 : nil)) }
            var row = rows[rows.count - 1]
            row.totals.requests += r.totals.requests
            row.totals.promptTokens += r.totals.promptTokens
            row.totals.completionTokens += r.totals.completionTokens
            row.totals.totalTokens += r.totals.totalTokens
            row.totals.estimatedRequests += r.totals.estimatedRequests
            if let p = prices[r.model] ?? prices["*"] {
                row.cost? += p.cost(prompt: r.totals.promptTokens, cached: r.cachedTokens, completion: r.totals.completionTokens)
            } else if priced {
                row.unpricedRequests += r.totals.requests
            }
            rows[rows.count - 1] = row
        }
        return UsageReport(from: from, to: to, groupBy: groupBy, rows: rows)
    }

    public var json: JSON {
        let items: [JSON] = rows.map { r in
            var o: JSON = ["group": .string(r.group), "requests": .number(r.totals.requests),
                           "promptTokens": .number(r.totals.promptTokens), "completionTokens": .number(r.totals.completionTokens),
                           "totalTokens": .number(r.totals.totalTokens), "estimatedRequests": .number(r.totals.estimatedRequests)]
            if let c = r.cost {
                o = o.setting("cost", .number(c)).setting("unpricedRequests", .number(r.unpricedRequests))
            }
            return o
        }
        return ["from": .string(UsagePeriod.iso(from)), "to": .string(UsagePeriod.iso(to)), "groupBy": .string(groupBy.rawValue),
                "rows": .array(items)]
    }

    /// A plain table for the terminal, with a total line.
    public var table: String {
        let priced = rows.contains { $0.cost != nil }
        var header = [groupBy.rawValue.uppercased(), "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "ESTIMATED"]
        if priced { header.append("COST") }
        var lines = [header]
        var sum = Row(group: "total", cost: priced ? 0 : nil)
        for r in rows {
            var l = [r.group, "\(r.totals.requests)", "\(r.totals.promptTokens)", "\(r.totals.completionTokens)",
                     "\(r.totals.totalTokens)", "\(r.totals.estimatedRequests)"]
            if priced { l.append(Self.money(r.cost ?? 0)) }
            lines.append(l)
            sum.totals.requests += r.totals.requests
            sum.totals.promptTokens += r.totals.promptTokens
            sum.totals.completionTokens += r.totals.completionTokens
            sum.totals.totalTokens += r.totals.totalTokens
            sum.totals.estimatedRequests += r.totals.estimatedRequests
            sum.cost? += r.cost ?? 0
        }
        var total = ["total", "\(sum.totals.requests)", "\(sum.totals.promptTokens)", "\(sum.totals.completionTokens)",
                     "\(sum.totals.totalTokens)", "\(sum.totals.estimatedRequests)"]
        if priced { total.append(Self.money(sum.cost ?? 0)) }
        lines.append(total)
        let widths = header.indices.map { i in lines.map { $0[i].count }.max() ?? 0 }
        let text = lines.map { l in
            l.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        return "usage \(UsagePeriod.iso(from)) .. \(UsagePeriod.iso(to)) by \(groupBy.rawValue)\n" + text.joined(separator: "\n")
    }

    /// Four decimals, no Foundation.
    static func money(_ v: Double) -> String {
        let scaled = Int64((v * 10_000).rounded())
        let frac = String(scaled % 10_000)
        return "\(scaled / 10_000).\(String(repeating: "0", count: 4 - frac.count))\(frac)"
    }

    /// `from` and `to` from ISO 8601 text (or defaults: the current UTC
    /// month up to now); the 400's message says what is wrong.
    public static func range(from: String?, to: String?, nowMs: Int64) -> Result<(Int64, Int64), GatewayError> {
        var start = UsagePeriod.month(containing: nowMs).from
        var end = nowMs + 1
        if let from {
            guard let v = UsagePeriod.parseISO(from) else { return .failure(.badRequest("'from' must be an ISO 8601 date or time, like 2026-11-01 or 2026-11-01T00:00:00Z")) }
            start = v
        }
        if let to {
            guard let v = UsagePeriod.parseISO(to) else { return .failure(.badRequest("'to' must be an ISO 8601 date or time, like 2026-12-01 or 2026-11-30T23:59:59Z")) }
            end = v
        }
        guard start < end else { return .failure(.badRequest("'from' must be before 'to'")) }
        return .success((start, end))
    }
}
