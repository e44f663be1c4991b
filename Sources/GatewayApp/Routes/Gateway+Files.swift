import KimiCore
import Storage
import Upstream

/// Files (`/v1/files`, OpenAI's and Moonshot's shapes; JSON answers passed
/// through byte for byte). One upstream account serves every client, so the
/// gateway records who uploaded which id (`FileRegistry`) and a client
/// lists, reads and deletes only its own files: another client's id is the
/// same 404 as an unknown one (OWASP API1). Admin keys see every file,
/// including files the gateway never recorded.
extension Gateway {
    /// `POST /v1/files`: the client's multipart body streamed upstream as it
    /// arrives (`BodyPolicy.streamed`, capped by `limits.maxFileBytes`).
    func uploadFile(_ ctx: RequestContext) throws {
        let registry = try services.fileRegistry()
        let type = ctx.request.header("content-type") ?? ""
        guard type.lowercased().hasPrefix("multipart/form-data"), type.contains("boundary=") else {
            throw GatewayError.badRequest("Content-Type must be multipart/form-data with a boundary (fields: file, purpose)")
        }
        guard let source = ctx.bodySource, source.remaining > 0 else { throw GatewayError.badRequest("Request body is required (multipart/form-data)") }
        // The key's quota, counted before a byte goes upstream; the
        // placeholder is settled whatever happens below.
        let bodyBytes = source.remaining
        let placeholder = try reserveUpload(ctx, registry: registry, bytes: bodyBytes)
        var kept: FileRegistry.Record?
        defer { if let placeholder { try? registry.settleUpload(placeholder: placeholder, file: kept) } }
        let stream = UploadStream(source)
        let call: BufferedCall
        do {
            // Files belong to the account that uploaded them: the pool's first
            // key (pinned), and no retry (the body is the client's stream, read once).
            call = try ctx.upstreamCall(services, "POST", "/files", pinned: true, retries: 0) { req in
                req.bodyStream = stream
                req.bodyLength = source.remaining
                req.contentType = type
            }
        } catch {
            if stream.broken { throw GatewayError.badRequest("Request body is shorter than its Content-Length") }
            throw error
        }
        guard let file = try? JSON.parse(call.body), let id = file["id"]?.stringValue, !id.isEmpty else {
            throw GatewayError.upstreamFailed("Upstream answer is not a file object")
        }
        let record = FileRegistry.Record(id: id, owner: owner(ctx), filename: file["filename"]?.stringValue ?? "",
                                         bytes: file["bytes"]?.intValue ?? bodyBytes, purpose: file["purpose"]?.stringValue ?? "")
        do {
            if let placeholder { try registry.settleUpload(placeholder: placeholder, file: record) } else { try registry.record(record) }
            kept = record
        } catch {
            // Never leave a file nobody may see: take it back upstream.
            _ = try? ctx.upstreamCall(services, "DELETE", "/files/\(id)", pinned: true)
            throw GatewayError.storageUnavailable("The upload could not be recorded: \(error)")
        }
        ctx.logNotes.append("file=\(HeaderSafety.printable(id, max: 64))")
        passThrough(ctx, call.body)
    }

    /// `GET /v1/files`: the upstream's list, narrowed to this client's files,
    /// in one page (`has_more: false`; OpenAI's SDKs page with `after`
    /// until they see it, and `after` is honoured).
    func listFiles(_ ctx: RequestContext) throws {
        let registry = try services.fileRegistry()
        let call = try ctx.upstreamCall(services, "GET", "/files", maxBytes: 16 << 20, pinned: true)
        guard let list = try? JSON.parse(call.body), let data = list["data"]?.arrayValue else {
            throw GatewayError.upstreamFailed("Upstream answer is not a file list")
        }
        var visible = data
        if !isAdmin(ctx) {
            let mine = try registry.ids(ownedBy: owner(ctx))
            visible = data.filter { $0["id"]?.stringValue.map(mine.contains) ?? false }
        }
        if let after = URLQuery.value("after", in: ctx.request.query), let i = visible.firstIndex(where: { $0["id"]?.stringValue == after }) {
            visible.removeSubrange(...i)
        }
        ctx.json(200, list.setting("data", .array(visible)).setting("has_more", false))
    }

    /// `GET /v1/files/{id}`.
    func getFile(_ ctx: RequestContext) throws { try fileCall(ctx, "GET", suffix: "") }

    /// `GET /v1/files/{id}/content`: the extracted text, `{"content", "file_type", "filename", "title", "type"}`.
    func fileContent(_ ctx: RequestContext) throws { try fileCall(ctx, "GET", suffix: "/content", maxBytes: 64 << 20) }

    /// `DELETE /v1/files/{id}`: upstream first; the record goes when the upstream agreed.
    func deleteFile(_ ctx: RequestContext) throws {
        let id = try fileCall(ctx, "DELETE", suffix: "")
        try services.fileRegistry().remove(id)
    }

    /// An upstream call on one file the client may see.
    @discardableResult
    private func fileCall(_ ctx: RequestContext, _ method: String, suffix: String, maxBytes: Int = BufferedCall.defaultMaxBytes) throws -> String {
        let registry = try services.fileRegistry()
        let id = ctx.pathParameters["id"] ?? ""
        let admin = isAdmin(ctx)
        if !admin, try registry.owner(of: id) != owner(ctx) { throw GatewayError.fileNotFound(id) }
        let call: BufferedCall
        do {
            call = try ctx.upstreamCall(services, method, "/files/\(id)\(suffix)", maxBytes: maxBytes, pinned: true)
        } catch {
            // The upstream's own "not found" looks exactly like ours.
            if error.type == "resource_not_found_error" { throw GatewayError.fileNotFound(id) }
            throw error
        }
        passThrough(ctx, call.body)
        return id
    }

    /// Counts an upload of `bytes` (the body's length: the file's size is
    /// known only when the upstream has it) against the key's quota; nil
    /// when no quota applies (admin keys, both limits 0).
    private func reserveUpload(_ ctx: RequestContext, registry: FileRegistry, bytes: Int) throws -> String? {
        let limits = ctx.config.limits
        guard !isAdmin(ctx), limits.maxFilesPerKey > 0 || limits.maxFileBytesPerKey > 0 else { return nil }
        let quota = FileRegistry.Quota(maxFiles: limits.maxFilesPerKey, maxBytes: limits.maxFileBytesPerKey)
        let admission: FileRegistry.Admission
        do { admission = try registry.reserveUpload(owner: owner(ctx), bytes: bytes, quota: quota) } catch {
            throw GatewayError.storageUnavailable("The upload could not be counted: \(error)")
        }
        switch admission {
        case let .admitted(placeholder):
            return placeholder
        case let .tooManyFiles(have, max):
            ctx.logNotes.append("file-quota=files")
            throw GatewayError.fileQuotaExceeded("This key keeps \(have) files, its limit is \(max) (limits.maxFilesPerKey): delete files it no longer needs (DELETE /v1/files/{id})")
        case let .tooManyBytes(have, adding, max):
            ctx.logNotes.append("file-quota=bytes")
            throw GatewayError.fileQuotaExceeded("This key keeps \(have) bytes of files and this upload is \(adding) more; its limit is \(max) (limits.maxFileBytesPerKey): delete files it no longer needs (DELETE /v1/files/{id})")
        }
    }

    private func owner(_ ctx: RequestContext) -> String { ctx.fileOwner }
    private func isAdmin(_ ctx: RequestContext) -> Bool { ctx.seesEveryFile }

    /// An upstream JSON answer, byte for byte.
    func passThrough(_ ctx: RequestContext, _ body: [UInt8]) {
        ctx.writer.respond(status: 200, headers: ctx.responseHeaders + [("Content-Type", "application/json; charset=utf-8")], body: body)
    }

    /// `POST /v1/tokenizers/estimate-token-count`: a chat-shaped body, its
    /// token count from the upstream (`data.total_tokens`).
    func estimateTokens(_ ctx: RequestContext) throws {
        _ = try ctx.jsonBody()
        let call = try ctx.upstreamCall(services, "POST", "/tokenizers/estimate-token-count", body: ctx.request.body)
        passThrough(ctx, call.body)
    }

    /// `GET /v1/users/me/balance`: the account's money, for admin keys only.
    func balance(_ ctx: RequestContext) throws {
        // The balance of the account the files live in (the pool's first key).
        let call = try ctx.upstreamCall(services, "GET", "/users/me/balance", pinned: true)
        passThrough(ctx, call.body)
    }
}

/// The client's upload as curl's body: read as curl sends; `broken` when the
/// client's body ended before its Content-Length.
final class UploadStream: UpstreamBodyStream {
    private let source: RequestBodySource
    private(set) var broken = false
    init(_ source: RequestBodySource) { self.source = source }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let n = source.read(into: buffer) else {
            broken = true
            return nil
        }
        return n
    }
}
