import FastCGI
import Glibc
import KimiCore

/// `kimi-gateway simulate`: the Kimi API simulator as a FastCGI responder.
enum SimulateCommand {
    static func run(_ o: Options) throws -> Int32 {
        try o.check(allowed: ["socket", "socket-group", "log-file"])
        try KimiGatewayCommand.redirectLog(o)
        Signals.install()
        let fd: Int32
        if let spec = o.values["socket"] {
            fd = try Listener.open(spec, group: o.values["socket-group"])
        } else {
            guard Listener.inheritedSocketAvailable() else { throw UsageError("simulate needs --socket or a listening socket on fd 0") }
            fd = 0
        }
        let sim = KimiSimulator(env: FileIO.environment())
        // Thousands of concurrent benchmark streams: the simulator must not be the bottleneck.
        let pool = WorkerPool(fd: fd, minThreads: 16, maxThreads: 4096, stackBytes: 256 << 10) { sim.handle($0) }
        pool.start()
        Log.info("Kimi API SIMULATOR pid \(getpid()) on \(o.values["socket"] ?? "fd 0"): answers are simulated, not from Kimi")
        _ = Signals.waitForTermination { if o.values["log-file"] != nil { try? KimiGatewayCommand.redirectLog(o) } }
        _ = pool.stop(drainNanos: 2_000_000_000)
        if let spec = o.values["socket"], spec.hasPrefix("/") { unlink(spec) }
        return 0
    }
}
