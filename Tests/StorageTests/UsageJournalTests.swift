import Glibc
import Testing
@testable import KimiCore
@testable import Storage

@Suite struct UsageJournalTests {
    static func fresh() throws -> (dir: String, ledger: UsageLedger) {
        var template = Array("/tmp/kimi-usage-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        return (dir, try UsageLedger(database: try SQLiteDatabase(path: dir + "/gateway.db")))
    }

    static func record(_ n: Int, outcome: UsageRecord.Outcome = .completed) -> UsageRecord {
        UsageRecord(recordID: "r\(n)-\(getpid())", at: 1_700_000_000_000 + Int64(n), requestID: "rid\(n)", keyName: "app",
                    keyFingerprint: "abcd1234", client: "key:abcd", route: "/v1/chat/completions", model: "moonshot-v1-8k",
                    promptTokens: 10 * n, completionTokens: n, status: 200, stream: n % 2 == 0, outcome: outcome,
                    estimated: outcome == .clientLeft, durationMs: 5, firstTokenMs: n % 2 == 0 ? 2 : nil)
    }

    static let everything: (Int64, Int64) = (0, .max)

    @Test func aLineCarriesTheUpstreamKeyAndAttemptsAndAnOlderLineStillReads() {
        var r = Self.record(5)
        r.upstreamKey = "sha256:0123abcd"
        r.attempts = 3
        #expect(UsageRecord(journalLine: Array(r.journalLine.dropLast())) == r)
        // A U1 line (a journal an older process left): no key, one attempt.
        let u1 = "U1\tid1\t1700000000000\trid\tapp\tabcd\tkey:abcd\t/v1/chat/completions\tmoonshot-v1-8k\t10\t2\t\t200\t0\tcompleted\t0\t5\t"
        let old = UsageRecord(journalLine: Array(u1.utf8))
        #expect(old?.upstreamKey == "" && old?.attempts == 1 && old?.promptTokens == 10 && old?.recordID == "id1")
        #expect(UsageRecord(journalLine: Array(("U3" + u1.dropFirst(2)).utf8)) == nil)
    }

    @Test func aLineCarriesTheSessionIntoTheLedgerAndAU3LineReadsWithNone() throws {
        var r = Self.record(6)
        r.session = "0f1e\tsession\\id"
        #expect(UsageRecord(journalLine: Array(r.journalLine.dropLast())) == r)
        var u3 = Self.record(7)
        u3.clamped = true
        let line = String(decoding: u3.journalLine.dropLast(), as: UTF8.self)
        let asU4 = "U4" + line.dropFirst(2).dropLast() // an older process's line: no cost field
        let asU3 = "U3" + asU4.dropFirst(2).dropLast() // and no session field
        #expect(UsageRecord(journalLine: Array(asU4.utf8)) == u3 && UsageRecord(journalLine: Array(asU3.utf8)) == u3)
        let (_, ledger) = try Self.fresh()
        try ledger.insert([r, u3])
        let rows = try ledger.db.query("SELECT session FROM usage ORDER BY at")
        #expect(rows.map { $0.first?.text } == ["0f1e\tsession\\id", ""])
    }

    @Test func aJournalLineIsTheRecordBack() {
        for outcome in UsageRecord.Outcome.allCases {
            let r = Self.record(3, outcome: outcome)
            #expect(UsageRecord(journalLine: Array(r.journalLine.dropLast())) == r)
        }
        #expect(!Self.record(1).journalLine.dropLast().contains(0x0A)) // one line each
        // Text with tabs, newlines, backslashes and non-ASCII comes back as it was.
        var odd = Self.record(4)
        odd.route = "/v1/x\t\ty\\n\n\r\\"
        odd.model = "模型\tkimi\n"
        odd.cachedTokens = 7
        odd.keyName = ""
        let line = odd.journalLine
        #expect(line.filter { $0 == 0x0A }.count == 1 && line.last == 0x0A)
        #expect(UsageRecord(journalLine: Array(line.dropLast())) == odd)
        // A torn line (a process killed mid-write) is not a record.
        #expect(UsageRecord(journalLine: Array(line.dropLast(9))) == nil)
    }

    @Test func drainingStoresEveryRecordAndClearsTheJournal() throws {
        let (dir, ledger) = try Self.fresh()
        let journal = try UsageJournal(directory: dir + "/journal")
        for n in 1...3 { #expect(journal.append(Self.record(n))) }
        // The records are in the file (the mapping is shared) before any drain.
        let before = UsageJournal.read(journal.path, from: 0) ?? []
        #expect(JournalLines.records(in: before[..<(before.firstIndex(of: 0) ?? before.count)]).records.count == 3)
        #expect(try journal.drain(into: ledger) == 3)
        let t = try ledger.totals(from: Self.everything.0, to: Self.everything.1)
        #expect(t.requests == 3 && t.promptTokens == 60 && t.completionTokens == 6 && t.totalTokens == 66)
        // Empty as a reader of a dead process's file sees it: a zero first.
        #expect(UsageJournal.read(journal.path, from: 0)?.first == 0)
        #expect(try journal.drain(into: ledger) == 0)
        // Written again from offset 0: a reader sees the new line and not the stale ones after it.
        #expect(journal.append(Self.record(7)))
        let again = UsageJournal.read(journal.path, from: 0) ?? []
        #expect(JournalLines.records(in: again[..<(again.firstIndex(of: 0) ?? again.count)]).records.map(\.recordID) == [Self.record(7).recordID])
        #expect(try journal.drain(into: ledger) == 1)
        journal.closeIfEmpty()
        #expect(access(journal.path, F_OK) != 0)
    }

    @Test func aDrainedRowHoldsEveryFieldAsRecordedEscapesUndoneAndTheBookLearnsItsKey() throws {
        let (dir, ledger) = try Self.fresh()
        let journal = try UsageJournal(directory: dir + "/journal")
        var odd = Self.record(4)
        odd.route = "/v1/x\t\ty\\n\n\r\\"
        odd.model = "模型\tkimi\n"
        odd.client = "10.0.0.1"
        odd.cachedTokens = 7
        odd.upstreamKey = "up\\key"
        odd.attempts = 2
        var keyless = Self.record(5)
        keyless.keyFingerprint = ""
        for r in [odd, keyless] { #expect(journal.append(r)) }
        let drained = try journal.drainRecords(into: ledger)
        #expect(drained.rows == 2 && drained.ofKeys == [UsageBook.Stored(odd)])
        let rows = try ledger.db.query("""
            SELECT record_id, at, request_id, key_name, key_fingerprint, client, route, model, prompt_tokens, completion_tokens,
            total_tokens, cached_tokens, status, stream, outcome, estimated, duration_ms, first_token_ms, upstream_key, attempts
            FROM usage ORDER BY at
            """)
        let r = odd
        let want: [SQLiteDatabase.Value] = [.text(r.recordID), .int(r.at), .text(r.requestID), .text(r.keyName), .text(r.keyFingerprint),
                                            .text(r.client), .text(r.route), .text(r.model), .int(40), .int(4), .int(44), .int(7),
                                            .int(200), .int(1), .text("completed"), .int(0), .int(5), .int(2), .text("up\\key"), .int(2)]
        #expect(rows.count == 2 && rows[0] == want)
        #expect(rows[1][4] == .text("") && rows[1][11] == .null && rows[1][17] == .null)
    }

    @Test func theJournalGrowsWhileRecordsWait() throws {
        let (dir, ledger) = try Self.fresh()
        let journal = try UsageJournal(directory: dir + "/journal")
        let n = UsageJournal.initialBytes / Self.record(1).journalLine.count + 100
        for i in 1...n {
            var r = Self.record(i)
            r.recordID = "grow-\(i)"
            #expect(journal.append(r))
        }
        var st = stat()
        #expect(stat(journal.path, &st) == 0 && Int(st.st_size) == 2 * UsageJournal.initialBytes)
        #expect(try journal.drain(into: ledger) == n)
    }

    @Test func aDeadProcessesJournalIsReplayedExactlyOnce() throws {
        let (dir, ledger) = try Self.fresh()
        let journalDir = dir + "/journal"
        _ = SharedFiles.ensureParent(of: journalDir + "/x")
        // A worker that was SIGKILLed after its records reached its journal (pid 0 is never a process).
        let leftover = journalDir + "/journal-0-12345.log"
        let fd = open(leftover, O_WRONLY | O_CREAT, 0o600)
        // As a mapped journal looks after a kill mid-copy: lines, a torn one, zeros.
        let lines = (1...4).flatMap { Self.record($0).journalLine } + Array(Self.record(5).journalLine.prefix(30))
            + [UInt8](repeating: 0, count: 4096)
        _ = lines.withUnsafeBytes { FileIO.writeAll(fd, $0) }
        close(fd)
        // One of them had already been stored before the kill.
        try ledger.insert([Self.record(1)])
        let journal = try UsageJournal(directory: journalDir)
        #expect(try journal.replayLeftovers(into: ledger).stored == 3)
        #expect(access(leftover, F_OK) != 0)
        #expect(try ledger.totals(from: Self.everything.0, to: Self.everything.1).requests == 4)
        // The live process's own journal is never taken for a leftover.
        _ = journal.append(Self.record(9))
        #expect(try journal.replayLeftovers(into: ledger).stored == 0 && access(journal.path, F_OK) == 0)
    }

    @Test func aKilledProcessLeavesOneRowPerRequestItSentUpstreamFinalOrProvisional() throws {
        let (dir, ledger) = try Self.fresh()
        let journalDir = dir + "/journal"
        let dead = try UsageJournal(directory: journalDir)
        var tickets: [Int?] = []
        for n in 1...5 {
            var p = Self.record(n, outcome: .interrupted)
            p.estimated = true
            tickets.append(dead.begin(p))
        }
        // Requests 1 and 2 ended; 3–5 were in flight when the process died.
        #expect(dead.append(Self.record(1), ticket: tickets[0]!) && dead.append(Self.record(2), ticket: tickets[1]!))
        // As if killed: its files stay under a pid that is gone.
        let stem = String(dead.path.dropLast(".log".count))
        for suffix in [".log", ".inflight"] { #expect(rename(stem + suffix, journalDir + "/journal-0-777" + suffix) == 0) }
        let live = try UsageJournal(directory: journalDir)
        let r = try live.replayLeftovers(into: ledger)
        #expect(r.stored == 5 && r.journals == 1 && r.skipped == 0)
        let rows = try ledger.report(from: 0, to: .max, groupBy: .model)
        #expect(rows.first?.totals.requests == 5 && rows.first?.totals.estimatedRequests == 3)
        #expect(access(journalDir + "/journal-0-777.log", F_OK) != 0 && access(journalDir + "/journal-0-777.inflight", F_OK) != 0)
        // A final row that made it to the journal before the kill wins over its provisional row.
        #expect(try live.replayLeftovers(into: ledger).stored == 0)
    }

    @Test func aJournalGrowsPastItsFirstMegabyteUnderAMappingThatNeverMoves() throws {
        let (dir, ledger) = try Self.fresh()
        let journal = try UsageJournal(directory: dir + "/journal")
        var n = 0
        // A database that is down: records wait, the file doubles (past 1 MiB).
        while n < 14_000 {
            var r = Self.record(n)
            r.recordID = "grow\(n)"
            #expect(journal.append(r))
            n += 1
        }
        let size = UsageJournal.read(journal.path, from: 0)?.count ?? 0
        #expect(size >= 2 << 20) // grown from 1 MiB
        #expect(try journal.drain(into: ledger) == 14_000)
        #expect(try ledger.totals(from: 0, to: .max).requests == 14_000)
    }

    @Test func aStopStoresWhatItCutShortAsInterrupted() throws {
        let (dir, ledger) = try Self.fresh()
        let journal = try UsageJournal(directory: dir + "/journal")
        let cut = journal.begin(Self.record(3, outcome: .interrupted))
        let ended = journal.begin(Self.record(4, outcome: .interrupted))
        #expect(cut != nil && ended != nil && cut != ended)
        #expect(journal.append(Self.record(4), ticket: ended))
        #expect(try journal.drain(into: ledger) == 1)
        // The stop: request 3 is still running; it is stored as interrupted, once.
        #expect(try journal.storeInFlight(into: ledger) == 1)
        #expect(try journal.storeInFlight(into: ledger) == 0)
        let t = try ledger.totals(from: 0, to: .max)
        #expect(t.requests == 2 && t.promptTokens == 70)
    }

    @Test func aZombieWriterIsGoneAndItsJournalIsTaken() throws {
        let (dir, ledger) = try Self.fresh()
        let journalDir = dir + "/journal"
        _ = SharedFiles.ensureParent(of: journalDir + "/x")
        let child = fork()
        if child == 0 { _exit(0) }
        defer { var status: Int32 = 0; waitpid(child, &status, 0) }
        var waited = 0
        while waited < 200, (FileIO.readText("/proc/\(child)/stat") ?? "").split(separator: " ")[2] != "Z" { usleep(10_000); waited += 1 }
        #expect(UsageJournal.startTime(of: child) == nil) // a zombie can never write again
        #expect(UsageJournal.startTime(of: getpid()) != nil)
        let file = journalDir + "/journal-\(child)-1.log"
        let fd = open(file, O_WRONLY | O_CREAT, 0o600)
        _ = Self.record(1).journalLine.withUnsafeBytes { FileIO.writeAll(fd, $0) }
        close(fd)
        #expect(try UsageJournal(directory: journalDir).replayLeftovers(into: ledger).stored == 1)
    }

    @Test func aLargeLeftoverJournalIsReplayedChunkByChunkWithTornAndForeignLinesSkipped() throws {
        let (dir, ledger) = try Self.fresh()
        let journalDir = dir + "/journal"
        _ = SharedFiles.ensureParent(of: journalDir + "/x")
        var bytes: [UInt8] = []
        for n in 1...3000 {
            var r = Self.record(n)
            r.recordID = "big\(n)"
            bytes += r.journalLine
            if n % 1000 == 0 { bytes += Array("not a record\n".utf8) }
        }
        bytes += Array(Self.record(9).journalLine.prefix(20)) + [UInt8](repeating: 0, count: 100)
        let fd = open(journalDir + "/journal-0-5.log", O_WRONLY | O_CREAT, 0o600)
        _ = bytes.withUnsafeBytes { FileIO.writeAll(fd, $0) }
        close(fd)
        // Chunks far smaller than the file, and than some lines' sum: lines split across chunks still count once.
        let r = try UsageJournal(directory: journalDir).replayLeftovers(into: ledger, chunkBytes: 4096)
        #expect(r.stored == 3000 && r.skipped == 3)
    }

    @Test func totalsAreByKeyAndPeriod() throws {
        let (_, ledger) = try Self.fresh()
        var other = Self.record(5)
        other.recordID = "other"
        other.keyFingerprint = "ffff0000"
        try ledger.insert([Self.record(1), Self.record(2, outcome: .clientLeft), other])
        #expect(try ledger.totals(from: 0, to: .max, keyFingerprint: "abcd1234").requests == 2)
        #expect(try ledger.totals(from: 0, to: .max, keyFingerprint: "abcd1234").estimatedRequests == 1)
        #expect(try ledger.totals(from: 1_700_000_000_002, to: .max).requests == 2) // at ≥ …002: records 2 and 5
        #expect(try ledger.insert([Self.record(1)], replayed: true) == 0) // a replay stores it once
    }

    @Test func rowsOfTheFirstLedgerSchemaSurviveTheMigration() throws {
        var template = Array("/tmp/kimi-usage-XXXXXX".utf8CString)
        let dir = String(cString: mkdtemp(&template)!)
        let db = try SQLiteDatabase(path: dir + "/gateway.db")
        try db.transaction { tx in
            for step in Schema.migrations.prefix(2) {
                for statement in step.split(separator: ";") where !statement.allSatisfy({ $0.isWhitespace }) { try tx.query(String(statement)) }
            }
            try tx.query("PRAGMA user_version = 2")
            try tx.query("""
                INSERT INTO usage VALUES ('old', 5, 'rid', 'app', 'abcd1234', 'c', '/v1/chat/completions', 'm', 3, 4, 7, NULL, 200, 0,
                                          'completed', 0, 9, NULL)
                """)
        }
        let ledger = try UsageLedger(database: db)
        #expect(try ledger.totals(from: 0, to: 10).totalTokens == 7)
        #expect(try ledger.insert([Self.record(1)]) == 1 && ledger.lastRowID() == 2)
    }

    @Test func sumsThatWouldOverflowAreReportedNotFailed() throws {
        let (_, ledger) = try Self.fresh()
        var a = Self.record(1)
        a.promptTokens = Int(Int64.max / 2)
        var b = Self.record(2)
        b.promptTokens = Int(Int64.max / 2)
        b.recordID = "b"
        try ledger.db.transaction { tx in
            for r in [a, b] {
                try tx.query("INSERT INTO usage (record_id, at, request_id, key_name, key_fingerprint, client, route, model, prompt_tokens, completion_tokens, total_tokens, status, stream, outcome, estimated, duration_ms) VALUES ('\(r.recordID)', \(r.at), 'q', 'k', 'abcd1234', 'c', '/v1', 'm', \(r.promptTokens), 0, \(r.promptTokens), 200, 0, 'completed', 0, 1)")
            }
            try tx.query("INSERT INTO usage (record_id, at, request_id, key_name, key_fingerprint, client, route, model, prompt_tokens, completion_tokens, total_tokens, status, stream, outcome, estimated, duration_ms) VALUES ('neg', 5, 'q', 'k', 'abcd1234', 'c', '/v1', 'm', -5000000, 0, -5000000, 200, 0, 'completed', 0, 1)")
        }
        let t = try ledger.totals(from: 0, to: .max)
        #expect(t.requests == 3 && t.promptTokens > Int(Int64.max / 4) && t.promptTokens < Int.max)
        #expect(try ledger.report(from: 0, to: .max, groupBy: .key).count == 1)
        #expect(try ledger.countsByKey(from: 0, to: .max, upTo: .max)["abcd1234"]?.requests == 3)
    }

    @Test func aCompleteLineThatDoesNotParseIsSkippedNotBlocking() {
        let bytes = Array("garbage\n".utf8) + Self.record(1).journalLine
        let (records, consumed, skipped) = JournalLines.records(in: bytes[...])
        #expect(records.count == 1 && skipped == 1 && consumed == bytes.count)
    }
}
