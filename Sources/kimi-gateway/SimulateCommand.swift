import ArgumentParser
import FastCGI
import Glibc
import KimiCore
import KimiSimulator

/// `kimi-gateway simulate`: the Kimi API simulator as a FastCGI responder.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the Kimi API simulator as a FastCGI responder (tests, benchmarks, `make run` without KIMI_API_KEY).",
        discussion: "KIMI_SIM_TOKENS, KIMI_SIM_DELAY_MS and KIMI_SIM_FIRST_MS set the default answer length and pace; directives in a prompt change them per request (see SimulatorDirectives)."
    )

    @OptionGroup var listener: ListenerOptions

    func run() throws {
        let process = ResponderProcess(socket: listener.socket, socketGroup: listener.socketGroup, logFile: listener.logFile)
        let fd: Int32
        do {
            try process.prepare()
            fd = try process.listen()
        } catch { throw Failure("\(error)") }
        let sim = KimiSimulator(env: FileIO.environment())
        // Thousands of concurrent benchmark streams: the simulator must not be the bottleneck.
        let pool = WorkerPool(fd: fd, minThreads: 16, maxThreads: 4096, stackBytes: 256 << 10) { sim.handle($0) }
        pool.start()
        Log.info("Kimi API SIMULATOR pid \(getpid()) on \(process.listeningOn): answers are simulated, not from Kimi")
        _ = process.runUntilTerminated(pool) { 2_000_000_000 }
        process.removeSocket()
    }
}
