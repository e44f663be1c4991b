import KimiCore
import Storage
import Upstream

/// Long-lived collaborators of the pipeline, shared by all worker threads.
public final class Services: @unchecked Sendable {
    public let models = ModelsCache()
    public let limiter = MachineRateLimiter()
    /// Upstream answers buffered at once by this process.
    public let buffers: BufferBudget
    /// Who uploaded which file; nil when the database cannot be opened
    /// (`storageProblem` says why, and file routes answer 503).
    public let files: FileRegistry?
    public let storageProblem: String
    /// Extracted document texts (`/api/chat/document`); nil without a directory.
    public let documents: DocumentCache?

    public init(maxBufferedBytes: Int = GatewayConfig().server.maxBufferedBytes, database: String? = nil,
                documents: GatewayConfig.Documents? = nil)
    {
        buffers = BufferBudget(limit: maxBufferedBytes)
        self.documents = documents.map { DocumentCache(directory: $0.cacheDir, maxBytes: $0.cacheBytes) }
        guard let database else {
            files = nil
            storageProblem = "no database configured"
            return
        }
        do {
            guard SharedFiles.ensureParent(of: database) else { throw SQLiteDatabase.Failure(description: "cannot create the directory of \(database)") }
            files = try FileRegistry(database: try SQLiteDatabase(path: database))
            storageProblem = ""
        } catch {
            files = nil
            storageProblem = "database \(database): \(error)"
            Log.error("storage: \(storageProblem); file routes will answer 503")
        }
    }

    func documentCache() throws -> DocumentCache {
        guard let documents else { throw GatewayError.storageUnavailable("The document cache is not configured") }
        return documents
    }

    /// The registry, or the 503 that says why there is none.
    func fileRegistry() throws -> FileRegistry {
        guard let files else { throw GatewayError.storageUnavailable("File storage is unavailable (\(storageProblem))") }
        return files
    }
}

extension Services {
    public static func make(config: GatewayConfig, cache: ConfigCache) -> Services {
        UpstreamClient.initialize()
        let services = Services(maxBufferedBytes: config.server.maxBufferedBytes, database: config.storage.database,
                                documents: config.documents)
        cache.onReload = { [buffers = services.buffers] in buffers.setLimit($0.server.maxBufferedBytes) }
        return services
    }
}
