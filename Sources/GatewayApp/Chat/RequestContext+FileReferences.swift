import KimiCore
import Storage

extension RequestContext {
    /// Who owns the files this request uploads (`FileOwner`).
    var fileOwner: String { FileOwner.of(key: apiKey, authRequired: config.auth.required) }
    /// Admin keys see every file, including ones the gateway never recorded.
    var seesEveryFile: Bool { apiKey?.role == .admin }

    /// Every `ms://` file id in a chat body must be this key's: another
    /// key's id is the same 404 as an unknown one (as on `/v1/files/{id}`),
    /// and nothing goes upstream. Admin keys may use any id.
    func checkFileReferences(_ body: JSON, services: Services) throws {
        let ids = FileReferences.ids(in: body)
        guard !ids.isEmpty, !seesEveryFile else { return }
        let registry = try services.fileRegistry()
        let owner = fileOwner
        for id in ids where try registry.owner(of: id) != owner {
            logNotes.append("file-not-owned")
            throw GatewayError.fileNotFound(id)
        }
    }
}
