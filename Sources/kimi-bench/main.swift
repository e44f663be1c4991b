// kimi-bench: measurements that need the gateway's own code, not HTTP.
//
//   kimi-bench limiter --file PATH [--processes 4] [--checks 1000000] [--keys 64]
//   kimi-bench limiter --redis redis://127.0.0.1:PORT/0 [--processes 4] [--checks 20000] [--keys 64]
//
// Forks N processes that each run `checks` rate-limit checks against one
// shared memory-mapped file (or the fleet's Redis: one EVALSHA
// round trip per check) at once (all start together through a pipe
// barrier), on `keys` hot keys so the processes really contend on the same
// words. Prints JSON: nanoseconds per check per process, and the totals.
import Fleet
import Glibc
import KimiCore
import SharedMemory

func option(_ name: String, _ def: Int) -> Int {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: "--" + name), i + 1 < a.count, let v = Int(a[i + 1]) { return v }
    return def
}

func stringOption(_ name: String) -> String? {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: "--" + name), i + 1 < a.count { return a[i + 1] }
    return nil
}

let redis = stringOption("redis").flatMap { RedisEndpoint(url: $0) }
guard CommandLine.arguments.count > 1, CommandLine.arguments[1] == "limiter", stringOption("file") != nil || redis != nil else {
    fputs("usage: kimi-bench limiter (--file PATH | --redis URL) [--processes N] [--checks N] [--keys N]\n", stderr)
    exit(2)
}
let path = stringOption("file") ?? ""
let processes = option("processes", 4)
let checks = option("checks", 1_000_000)
let keys = max(1, option("keys", 64))

/// One check on the store under test: the file's CAS loop, or Redis's script.
func makeCheck() -> (UInt64, GCRA) -> GCRA.Decision? {
    if let redis {
        let store = RedisWordStore(endpoint: redis, timeoutMs: 1000, prefix: "kimi-bench:")
        return { key, policy in
            store.step(slot: key, cost: policy.interval, window: policy.windowMicros).map { policy.decide(tat: $0.stored, now: $0.now) }
        }
    }
    let limiter = RateLimiter(store: MappedRateLimitStore(path: path, capacity: 65_536))
    return { key, policy in limiter.check(key: key, policy: policy) }
}

if redis == nil { unlink(path) }
// The store must be usable, or there is nothing to measure: say so and fail
// (a missing run folder once made every check nil and the report 0 ns).
guard makeCheck()(1, GCRA(.init(windowMs: 1000, maxRequests: 1))) != nil else {
    fputs("kimi-bench: the limiter store \(redis.map(\.description) ?? path) cannot be used (see the log line above)\n", stderr)
    exit(1)
}

var gate: [Int32] = [0, 0]
pipe(&gate)
var results: [Int32] = [0, 0]
pipe(&results)
var pids: [pid_t] = []
for _ in 0..<processes {
    let pid = fork()
    if pid == 0 {
        close(gate[1])
        let check = makeCheck()
        // A limit high enough that most checks admit (the common case: a CAS per check).
        let policy = GCRA(.init(windowMs: 1000, maxRequests: 1_000_000_000))
        // Client strings, hashed inside the loop as the middleware does per request.
        let hot = (0..<keys).map { "ip:10.0.0.\($0)" }
        var b: UInt8 = 0
        _ = read(gate[0], &b, 1)
        var admitted = 0
        let start = Clock.monotonicNanos()
        for i in 0..<checks {
            guard let d = check(RateLimiter.key(client: hot[i % keys], policy: "default:1000000000/1000"), policy) else {
                _exit(3) // the store went away mid-run: no figure
            }
            if d.allowed { admitted += 1 }
        }
        let elapsed = Clock.monotonicNanos() - start
        var line = Array("\(elapsed) \(admitted)\n".utf8)
        _ = write(results[1], &line, line.count)
        _exit(0)
    }
    pids.append(pid)
}
close(gate[0])
close(gate[1]) // start
close(results[1])
for p in pids {
    var s: Int32 = 0
    waitpid(p, &s, 0)
    if s != 0 { fputs("kimi-bench: a measuring process failed (status \(s))\n", stderr); exit(1) }
}
var raw = [UInt8](repeating: 0, count: 4096)
let n = read(results[0], &raw, raw.count)
let lines = String(decoding: raw[0..<max(0, n)], as: UTF8.self).split(separator: "\n")
let perCheck = lines.map { Double($0.split(separator: " ")[0])! / Double(checks) }
let mean = perCheck.reduce(0, +) / Double(max(1, perCheck.count))
print("{\"processes\":\(processes),\"checksPerProcess\":\(checks),\"keys\":\(keys),\"nsPerCheck\":\(mean),\"nsPerCheckByProcess\":[\(perCheck.map { String($0) }.joined(separator: ","))]}")
if redis == nil { unlink(path) }
