/// One chat request as the usage ledger keeps it: who, what,
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
        /// The process serving it died (or stopped) before it ended: the row
        /// written at admission, with the reservation as its estimate.
        case interrupted
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
    /// The fingerprint of the upstream key the answer came with ("" when none was tried).
    public var upstreamKey: String
    /// Upstream attempts it took (0 when nothing went upstream).
    public var attempts: Int
    /// The upstream reported a count out of range, held to its bound (`ReportedTokens`).
    public var clamped: Bool
    /// The client's session (Claude Code's `X-Claude-Code-Session-Id`), "" when none.
    public var session: String
    /// What it cost in millionths of the currency of `upstream.prices`, at
    /// the prices of its time (cached prompt tokens at the cached price,
    /// rounded up); nil when its model had no price.
    public var costMicros: Int?

    public var totalTokens: Int { promptTokens.addingSaturated(completionTokens) }

    public init(recordID: String, at: Int64, requestID: String, keyName: String, keyFingerprint: String, client: String,
                route: String, model: String, promptTokens: Int, completionTokens: Int, cachedTokens: Int? = nil,
                status: Int, stream: Bool, outcome: Outcome, estimated: Bool, durationMs: Int, firstTokenMs: Int? = nil,
                upstreamKey: String = "", attempts: Int = 1, clamped: Bool = false, session: String = "", costMicros: Int? = nil)
    {
        self.costMicros = costMicros
        self.clamped = clamped
        self.session = session
        self.upstreamKey = upstreamKey
        self.attempts = attempts
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

    /// One journal line: `U1`, then the fields in a fixed order, separated
    /// by tabs, ending in a newline; in text fields `\`, tab, CR, LF and NUL
    /// are escaped (`\\`, `\t`, `\r`, `\n`, `\0`), so a line never holds a
    /// raw newline or zero byte (a mapped journal ends at its first zero).
    /// Not JSON: serializing and parsing JSON here was 5 % of the gateway's
    /// CPU on a completion (perf, bench scenario 2b); this is one pass over
    /// the bytes each way.
    /// Written through a pointer into a buffer of the worst-case size (every
    /// text byte escaped, every number 20 digits): appending to an array
    /// from nested functions took 2.4 µs a line (a boxed capture, a String
    /// per number), this 0.5 µs (StorageTests timing, release build).
    public var journalLine: [UInt8] {
        var bound = Self.version.count + 1 + 12 * 21 + 9 + 2 * (outcome.rawValue.utf8.count + upstreamKey.utf8.count)
        bound += 2 * (recordID.utf8.count + requestID.utf8.count + keyName.utf8.count + keyFingerprint.utf8.count)
        bound += 2 * (client.utf8.count + route.utf8.count + model.utf8.count + session.utf8.count) + 1
        return [UInt8](unsafeUninitializedCapacity: bound) { buf, count in
            var w = LineWriter(base: buf.baseAddress!)
            for b in Self.version { w.put(b) }
            w.text(recordID); w.number(at); w.text(requestID); w.text(keyName); w.text(keyFingerprint); w.text(client)
            w.text(route); w.text(model); w.number(Int64(promptTokens)); w.number(Int64(completionTokens))
            w.number(cachedTokens.map(Int64.init)); w.number(Int64(status)); w.number(stream ? 1 : 0); w.text(outcome.rawValue)
            w.number(estimated ? 1 : 0); w.number(Int64(durationMs)); w.number(firstTokenMs.map(Int64.init))
            w.text(upstreamKey); w.number(Int64(attempts)); w.number(clamped ? 1 : 0); w.text(session)
            w.number(costMicros.map(Int64.init))
            w.put(0x0A)
            count = w.count
        }
    }

    private struct LineWriter {
        let base: UnsafeMutablePointer<UInt8>
        var count = 0

        @inline(__always) mutating func put(_ b: UInt8) {
            base[count] = b
            count += 1
        }

        /// Runs of plain bytes copied whole; only the bytes to escape are
        /// looked at one by one (a switch per byte was 4,400 instructions
        /// a line, callgrind).
        mutating func text(_ s: String) {
            put(0x09)
            var s = s
            s.withUTF8 { bytes in
                guard let from = bytes.baseAddress else { return }
                var run = 0
                for i in 0..<bytes.count {
                    let b = bytes[i]
                    if b > 0x0D && b != 0x5C { continue }
                    let escape: UInt8 = switch b {
                    case 0x5C: 0x5C
                    case 0x09: 0x74
                    case 0x0A: 0x6E
                    case 0x0D: 0x72
                    case 0x00: 0x30 // a mapped journal ends at its first zero byte
                    default: 0
                    }
                    guard escape != 0 else { continue }
                    copy(from + run, i - run)
                    put(0x5C); put(escape)
                    run = i + 1
                }
                copy(from + run, bytes.count - run)
            }
        }

        @inline(__always) mutating func copy(_ from: UnsafePointer<UInt8>, _ n: Int) {
            guard n > 0 else { return }
            (base + count).update(from: from, count: n)
            count += n
        }

        mutating func number(_ v: Int64?) {
            put(0x09)
            guard let v else { return }
            if v < 0 { put(0x2D) }
            var m = v.magnitude
            let start = count
            repeat {
                put(0x30 + UInt8(m % 10))
                m /= 10
            } while m > 0
            // Least significant digit first: reverse in place.
            var (lo, hi) = (start, count - 1)
            while lo < hi {
                (base[lo], base[hi]) = (base[hi], base[lo])
                lo += 1
                hi -= 1
            }
        }
    }

    /// U5 adds the cost; U4 added the session; U3 `clamped`; U2 the
    /// upstream key and the attempts. Lines of older versions (a journal
    /// left by an older process) still read, with "", 1, not clamped, no
    /// session and no cost.
    static let version: [UInt8] = Array("U5".utf8)
    static let version4: [UInt8] = Array("U4".utf8)
    static let version3: [UInt8] = Array("U3".utf8)
    static let version2: [UInt8] = Array("U2".utf8)
    static let version1: [UInt8] = Array("U1".utf8)

    /// A journal line back (without its newline); nil for a torn or foreign line.
    public init?(journalLine line: [UInt8]) {
        guard let r = line.withUnsafeBufferPointer({ Self(journalLine: $0) }) else { return nil }
        self = r
    }

    /// The same over the drain's bytes, without copying the line.
    public init?(journalLine line: UnsafeBufferPointer<UInt8>) {
        guard let f = JournalFields(line: line) else { return nil }
        self.init(f)
    }

    /// The record the fields hold (Strings made here; the ledger binds the
    /// fields themselves).
    public init(_ f: JournalFields) {
        self.init(recordID: f.text(JournalFields.recordID), at: f.number(JournalFields.at)!, requestID: f.text(JournalFields.requestID),
                  keyName: f.text(JournalFields.keyName), keyFingerprint: f.text(JournalFields.keyFingerprint),
                  client: f.text(JournalFields.client), route: f.text(JournalFields.route), model: f.text(JournalFields.model),
                  promptTokens: f.int(JournalFields.promptTokens)!, completionTokens: f.int(JournalFields.completionTokens)!,
                  cachedTokens: f.int(JournalFields.cachedTokens), status: f.int(JournalFields.status)!,
                  stream: f.int(JournalFields.stream) == 1, outcome: f.outcome, estimated: f.int(JournalFields.estimated) == 1,
                  durationMs: f.int(JournalFields.durationMs)!, firstTokenMs: f.int(JournalFields.firstTokenMs),
                  upstreamKey: f.hasUpstreamKey ? f.text(JournalFields.upstreamKey) : "",
                  attempts: f.hasUpstreamKey ? f.int(JournalFields.attempts) ?? 1 : 1, clamped: f.int(JournalFields.clamped) == 1,
                  session: f.text(JournalFields.session), costMicros: f.int(JournalFields.costMicros))
    }
}

/// One journal line split into its fields, slices of the bytes it was read
/// from (valid while they are): checked once (the version, the field count,
/// every required number, the outcome), then read as numbers, as Strings
/// (`UsageRecord`) or bound to SQL straight from the bytes (the ledger's
/// drain: making 9 Strings a row and SQLite copying each was ~40 % of the
/// drain's instructions, callgrind).
public struct JournalFields {
    public typealias Field = UnsafeBufferPointer<UInt8>
    public static let recordID = 1, at = 2, requestID = 3, keyName = 4, keyFingerprint = 5, client = 6, route = 7, model = 8
    public static let promptTokens = 9, completionTokens = 10, cachedTokens = 11, status = 12, stream = 13, outcome = 14
    public static let estimated = 15, durationMs = 16, firstTokenMs = 17, upstreamKey = 18, attempts = 19, clamped = 20, session = 21
    public static let costMicros = 22

    private let fields: [Field]
    /// A U2 to U5 line (U1 lines have no upstream key and attempts; U3 adds `clamped`).
    public let hasUpstreamKey: Bool
    public let outcome: UsageRecord.Outcome

    /// nil for a torn or foreign line.
    public init?(line: UnsafeBufferPointer<UInt8>) {
        var fields: [Field] = []
        fields.reserveCapacity(23)
        var start = 0
        for i in 0...line.count where i == line.count || line[i] == 0x09 {
            fields.append(Field(rebasing: line[start..<i]))
            start = i + 1
        }
        let v5 = fields.count == 23 && fields[0].elementsEqual(UsageRecord.version)
        let v4 = fields.count == 22 && fields[0].elementsEqual(UsageRecord.version4)
        let v3 = fields.count == 21 && fields[0].elementsEqual(UsageRecord.version3)
        let v2 = fields.count == 20 && fields[0].elementsEqual(UsageRecord.version2)
        guard v5 || v4 || v3 || v2 || fields.count == 18 && fields[0].elementsEqual(UsageRecord.version1) else { return nil }
        self.fields = fields
        hasUpstreamKey = v5 || v4 || v3 || v2
        let required = [Self.at, Self.promptTokens, Self.completionTokens, Self.status, Self.stream, Self.estimated, Self.durationMs]
        guard required.allSatisfy({ Self.number(fields[$0]) != nil }),
              let outcome = UsageRecord.Outcome(rawValue: String(decoding: fields[Self.outcome], as: UTF8.self)) else { return nil }
        self.outcome = outcome
    }

    public subscript(_ i: Int) -> Field { i < fields.count ? fields[i] : Field(start: nil, count: 0) }

    /// Whether the field's bytes are its text as they stand (no escape to undo).
    public func isPlain(_ i: Int) -> Bool { !self[i].contains(0x5C) }

    /// The field's text, escapes undone.
    public func text(_ i: Int) -> String {
        isPlain(i) ? String(decoding: self[i], as: UTF8.self) : String(decoding: unescaped(i), as: UTF8.self)
    }

    public func unescaped(_ i: Int) -> [UInt8] {
        var out: [UInt8] = []
        var escaped = false
        for b in self[i] {
            if escaped {
                switch b {
                case 0x74: out.append(0x09)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x30: out.append(0x00)
                default: out.append(b)
                }
                escaped = false
            } else if b == 0x5C {
                escaped = true
            } else {
                out.append(b)
            }
        }
        return out
    }

    public func number(_ i: Int) -> Int64? { Self.number(self[i]) }
    public func int(_ i: Int) -> Int? { number(i).map { Int($0) } }

    static func number(_ f: Field) -> Int64? {
        guard !f.isEmpty, f.count <= 18 else { return nil }
        var v: Int64 = 0
        var negative = false
        for (k, b) in f.enumerated() {
            if k == 0, b == 0x2D, f.count > 1 { negative = true; continue }
            guard b >= 0x30, b <= 0x39 else { return nil }
            v = v * 10 + Int64(b - 0x30)
        }
        return negative ? -v : v
    }
}

/// The pure half of the journal: the complete records in a journal's bytes.
/// A line counts once it ends in a newline; a torn last line (a process
/// killed mid-write) is left for later or for nobody, and a complete line
/// that does not parse is skipped (counted) rather than blocking the rest.
public enum JournalLines {
    public static func records(in bytes: ArraySlice<UInt8>) -> (records: [UsageRecord], consumed: Int, skipped: Int) {
        bytes.withUnsafeBufferPointer { buf in
            let (lines, consumed, skipped) = fields(in: buf)
            return (lines.map(UsageRecord.init), consumed, skipped)
        }
    }

    /// The same as fields, slices of `buf` (valid while it is).
    public static func fields(in buf: UnsafeBufferPointer<UInt8>) -> (lines: [JournalFields], consumed: Int, skipped: Int) {
        var lines: [JournalFields] = []
        var skipped = 0
        var start = 0
        var consumed = 0
        while let nl = buf[start...].firstIndex(of: 0x0A) {
            if let f = JournalFields(line: UnsafeBufferPointer(rebasing: buf[start..<nl])) { lines.append(f) } else { skipped += 1 }
            start = nl + 1
            consumed = start
        }
        return (lines, consumed, skipped)
    }
}
