/// Keys that a reload cannot change while the process runs.
extension GatewayConfig {
    /// `fresh` with every restart-only key kept at its running value, and the
    /// names of those whose change was refused (logged by `ConfigCache`):
    /// - `rateLimit.file`, `rateLimit.tableSize`: a new table would start every
    ///   client's quota afresh, and processes that reload at different moments
    ///   would count in different tables;
    /// - `server.minThreads`, `server.maxThreads`, `server.readTimeoutMs`,
    ///   `server.batchScheduling`: read once when the worker pool starts
    ///   (threads inherit the policy from the thread that starts them);
    /// - `storage.database`: opened once; a new path would lose sight of
    ///   every file recorded in the old one.
    public func keepingRestartOnly(from running: GatewayConfig) -> (GatewayConfig, refused: [String]) {
        var c = self
        var refused: [String] = []
        func keep<T: Equatable>(_ name: String, _ path: WritableKeyPath<GatewayConfig, T>) {
            if c[keyPath: path] != running[keyPath: path] {
                refused.append("\(name) (\(c[keyPath: path]) → kept \(running[keyPath: path]))")
                c[keyPath: path] = running[keyPath: path]
            }
        }
        keep("rateLimit.file", \.rateLimit.file)
        keep("rateLimit.tableSize", \.rateLimit.tableSize)
        keep("server.minThreads", \.server.minThreads)
        keep("server.maxThreads", \.server.maxThreads)
        keep("server.readTimeoutMs", \.server.readTimeoutMs)
        keep("server.batchScheduling", \.server.batchScheduling)
        keep("storage.database", \.storage.database)
        return (c, refused)
    }
}
