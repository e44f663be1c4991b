import Glibc
import Testing
@testable import KimiCore

/// The access log's writer thread (issue #34): a request thread never waits
/// on the log's file, and no line is lost, torn or doubled.
@Suite struct LogBufferTests {
    /// A pipe whose reader collects everything until the write end closes.
    final class PipeReader: @unchecked Sendable {
        let readFd: Int32
        let writeFd: Int32
        private let collected = Locked<[UInt8]>([])
        private var thread = pthread_t()

        init() {
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            readFd = fds[0]
            writeFd = fds[1]
        }

        func startReading() {
            let box = Unmanaged.passRetained(self).toOpaque()
            pthread_create(&thread, nil, { arg in
                let me = Unmanaged<PipeReader>.fromOpaque(arg!).takeRetainedValue()
                var buf = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buf.withUnsafeMutableBytes { read(me.readFd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    me.collected.update { $0 += buf[0..<n] }
                }
                return nil
            }, box)
        }

        /// Closes the write end and returns what was read.
        func finish() -> [String] {
            close(writeFd)
            pthread_join(thread, nil)
            close(readFd)
            return String(decoding: collected.get(), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        }

        /// Fills the pipe until a write would block: a log nobody reads.
        func fill() {
            let flags = fcntl(writeFd, F_GETFL)
            _ = fcntl(writeFd, F_SETFL, flags | O_NONBLOCK)
            let chunk = [UInt8](repeating: 0x0A, count: 4096) // empty lines
            while chunk.withUnsafeBytes({ write(writeFd, $0.baseAddress, $0.count) }) > 0 {}
            _ = fcntl(writeFd, F_SETFL, flags)
        }
    }

    @Test func aLineIsAppendedWithoutWaitingForALogNobodyReads() throws {
        let pipe = PipeReader()
        pipe.fill() // a direct write(2) of a line would now block until someone reads
        let log = LogBuffer(fd: pipe.writeFd, batchMicros: 100)
        let start = Clock.monotonicNanos()
        for i in 0..<1000 { log.append(line: Array("line \(i)".utf8)) }
        let appendMs = (Clock.monotonicNanos() - start) / 1_000_000
        #expect(appendMs < 1_000, "appending waited on the log's file")
        #expect(log.flush(timeoutMs: 50) == false, "the lines cannot have been written: the pipe is full")
        pipe.startReading()
        #expect(log.flush(timeoutMs: 10_000))
        let lines = pipe.finish().filter { $0.hasPrefix("line ") }
        #expect(lines == (0..<1000).map { "line \($0)" })
    }

    @Test func linesFromManyThreadsArriveWholeAndOnceThroughAPipe() throws {
        let pipe = PipeReader()
        pipe.startReading()
        let log = LogBuffer(fd: pipe.writeFd, batchMicros: 50)
        let threads = 8, perThread = 2_000
        // Lines of many lengths, some longer than PIPE_BUF.
        func line(_ t: Int, _ i: Int) -> String {
            "t\(t) i\(i) " + String(repeating: "x", count: (i * 37) % (i % 97 == 0 ? 9000 : 300))
        }
        var ids: [pthread_t] = []
        final class Job: @unchecked Sendable {
            let t: Int; let n: Int; let log: LogBuffer; let make: (Int, Int) -> String
            init(_ t: Int, _ n: Int, _ log: LogBuffer, _ make: @escaping (Int, Int) -> String) { self.t = t; self.n = n; self.log = log; self.make = make }
        }
        for t in 0..<threads {
            var tid = pthread_t()
            pthread_create(&tid, nil, { arg in
                let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
                for i in 0..<job.n { job.log.append(line: Array(job.make(job.t, i).utf8)) }
                return nil
            }, Unmanaged.passRetained(Job(t, perThread, log, line)).toOpaque())
            ids.append(tid)
        }
        for tid in ids { pthread_join(tid, nil) }
        #expect(log.flush(timeoutMs: 10_000))
        let got = pipe.finish().filter { !$0.isEmpty }
        #expect(got.count == threads * perThread)
        var expected = Set<String>()
        for t in 0..<threads { for i in 0..<perThread { expected.insert(line(t, i)) } }
        #expect(Set(got) == expected)
    }

    @Test func aFullBufferWritesTheLineItselfAndLosesNothing() throws {
        let pipe = PipeReader()
        pipe.startReading()
        let log = LogBuffer(fd: pipe.writeFd, capacity: 64, batchMicros: 20_000)
        for i in 0..<50 { log.append(line: Array("overflowing line number \(i)".utf8)) }
        #expect(log.flush(timeoutMs: 10_000))
        #expect(log.overflowed > 0)
        let got = pipe.finish().filter { !$0.isEmpty }
        #expect(Set(got) == Set((0..<50).map { "overflowing line number \($0)" }))
    }

    @Test func piecesForAPipeEndAtLineEndsAndStayWithinTheLimit() {
        func cut(_ s: String, _ limit: Int) -> [String] {
            let b = Array(s.utf8)
            return b.withUnsafeBytes { p in LogBuffer.atomicPieces(p, limit: limit).map { String(decoding: b[$0], as: UTF8.self) } }
        }
        #expect(cut("aa\nbb\ncc\n", 6) == ["aa\nbb\n", "cc\n"])
        #expect(cut("aa\nbb\ncc\n", 100) == ["aa\nbb\ncc\n"])
        #expect(cut("aa\nbbbbbbbbbb\ncc\n", 6) == ["aa\n", "bbbbbbbbbb\n", "cc\n"])
        #expect(cut("bbbbbbbbbb\n", 4) == ["bbbbbbbbbb\n"])
        #expect(cut("aa\nbb", 4) == ["aa\n", "bb"])
        #expect(cut("", 4) == [])
        // Every byte in exactly one piece, in order.
        let text = (0..<500).map { String(repeating: "y", count: $0 % 61) }.joined(separator: "\n") + "\n"
        let pieces = cut(text, 256)
        #expect(pieces.joined() == text)
        #expect(pieces.allSatisfy { $0.utf8.count <= 256 && $0.hasSuffix("\n") })
    }
}

@Suite struct ForkGenerationTests {
    @Test func aForkedChildSeesTheNextGenerationAndTheParentItsOwn() throws {
        let before = ForkGeneration.current
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let pid = fork()
        if pid == 0 {
            var seen = ForkGeneration.current
            _ = write(fds[1], &seen, 8)
            _exit(0)
        }
        var child: UInt64 = 0
        #expect(read(fds[0], &child, 8) == 8)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        close(fds[0]); close(fds[1])
        #expect(child == before + 1)
        #expect(ForkGeneration.current == before)
    }
}
