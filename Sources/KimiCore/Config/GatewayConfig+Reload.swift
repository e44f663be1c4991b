/// Keys that a reload cannot change while the process runs.
extension GatewayConfig {
    /// `fresh` with every restart-only key (`ConfigKey.Reload.restart`) kept
    /// at its running value, and the names of those whose change was
    /// refused (logged by `ConfigCache`):
    /// - `rateLimit.file`, `rateLimit.tableSize`: a new table would start every
    ///   client's quota afresh, and processes that reload at different moments
    ///   would count in different tables;
    /// - `server.minThreads`, `server.maxThreads`, `server.readTimeoutMs`,
    ///   `server.batchScheduling`: read once when the worker pool starts
    ///   (threads inherit the policy from the thread that starts them);
    /// - `storage.database`: opened once; a new path would lose sight of
    ///   every file recorded in the old one;
    /// - `usage.database`, `usage.drainIntervalMs`, `documents.cacheDir`,
    ///   `documents.cacheBytes`: opened or started once per process.
    public func keepingRestartOnly(from running: GatewayConfig) -> (GatewayConfig, refused: [String]) {
        var c = self
        let refused = Self.keys.compactMap { $0.keep(&c, running) }
        return (c, refused)
    }
}
