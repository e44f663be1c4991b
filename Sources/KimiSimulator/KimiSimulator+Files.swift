import Glibc
import FastCGI
import KimiCore

/// One uploaded file, as Kimi keeps it: its metadata, and for text files
/// the text its `content` returns (other files: a stand-in extraction).
struct SimulatedFile {
    let id: String
    let filename: String
    let bytes: Int
    let purpose: String
    let createdAt: Int
    let content: String

    var json: JSON {
        ["id": .string(id), "object": "file", "bytes": .number(bytes), "created_at": .number(createdAt),
         "filename": .string(filename), "purpose": .string(purpose), "status": "ok", "status_details": ""]
    }
}

/// Kimi's files, tokenizer and balance (`/v1/files`, `/v1/tokenizers/
/// estimate-token-count`, `/v1/users/me/balance`), shaped as the Kimi API
/// answers them.
extension KimiSimulator {
    /// Text kept for `content`; larger uploads are counted, not kept.
    static let maxKeptText = 16 << 20

    func registerFileRoutes() {
        router.add("POST", "/v1/files", access: .client, body: .streamed) { [unowned self] ex, req, _ in self.upload(ex, req) }
        router.add("GET", "/v1/files", access: .client) { [unowned self] ex, _, _ in self.listFiles(ex) }
        router.add("GET", "/v1/files/{id}", access: .client) { [unowned self] ex, _, p in self.file(ex, p["id"] ?? "", content: false) }
        router.add("GET", "/v1/files/{id}/content", access: .client) { [unowned self] ex, _, p in self.file(ex, p["id"] ?? "", content: true) }
        router.add("DELETE", "/v1/files/{id}", access: .client) { [unowned self] ex, _, p in self.deleteFile(ex, p["id"] ?? "") }
        router.add("POST", "/v1/tokenizers/estimate-token-count", access: .client) { [unowned self] ex, req, _ in self.estimate(ex, req) }
        router.add("GET", "/v1/users/me/balance", access: .client) { ex, _, _ in
            ex.respondJSON(status: 200, ["code": 0, "data": ["available_balance": .number("49.58894"), "voucher_balance": .number("46.58893"), "cash_balance": .number("3.00001")],
                                         "scode": "0x0", "status": true])
        }
    }

    /// Reads the multipart body as it arrives: the `purpose` field and the
    /// `file` part (its text kept when it is small, its bytes counted).
    func upload(_ ex: FastCGIExchange, _ req: Request) {
        guard case let .success(length) = ContentLength.parse(ex.params.contentLength, cap: 1 << 30),
              var parser = MultipartParser(contentType: req.header("content-type") ?? "")
        else { return error(ex, 400, "invalid_request_error", "Invalid request: multipart/form-data with a boundary is required") }
        let body = ex.bodyStream(length: length)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var current: MultipartParser.Part?
        var purpose = ""
        var filename: String?
        var bytes = 0
        var kept: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { body.read(into: $0) }
            guard let n else { return error(ex, 400, "invalid_request_error", "Invalid request: the body ended early") }
            if n == 0 { break }
            let events: [MultipartParser.Event]
            do { events = try buffer.withUnsafeBytes { try parser.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) } } catch {
                return self.error(ex, 400, "invalid_request_error", "Invalid request: \(error)")
            }
            for e in events {
                switch e {
                case let .begin(p):
                    current = p
                    if p.name == "file" { filename = p.filename ?? "file" }
                case let .data(d):
                    if current?.name == "file" {
                        bytes += d.count
                        if kept.count < Self.maxKeptText { kept += d.prefix(Self.maxKeptText - kept.count) }
                    } else if current?.name == "purpose" {
                        purpose += String(decoding: d, as: UTF8.self)
                    }
                case .end:
                    current = nil
                }
            }
        }
        guard parser.isComplete, let filename else { return error(ex, 400, "invalid_request_error", "Invalid request: a file part is required") }
        guard purpose == "file-extract" || purpose == "image" || purpose == "video" else {
            return error(ex, 400, "invalid_request_error", "Invalid request: purpose must be file-extract, image or video")
        }
        let text = String(validating: kept, as: UTF8.self) ?? "Text extracted from \(filename) (\(bytes) bytes)."
        // `[sim:first=MS]` in a file's text: the upload answers after MS (a
        // slow extraction, for the gateway's single flight).
        if text.contains("[sim:") {
            var base = defaults
            base.firstMs = 0
            let d = SimulatorDirectives.parse(text, defaults: base)
            if d.firstMs > 0 { usleep(UInt32(min(d.firstMs, 60_000)) * 1000) }
        }
        let file = SimulatedFile(id: "cn" + RequestID.fresh() + RequestID.fresh().prefix(4), filename: filename, bytes: bytes,
                                 purpose: purpose, createdAt: Clock.unixSeconds(), content: text)
        files.update { $0[file.id] = file }
        stats.update { $0.uploads += 1 }
        ex.respondJSON(status: 200, file.json)
    }

    func listFiles(_ ex: FastCGIExchange) {
        let all = files.get().values.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        ex.respondJSON(status: 200, ["object": "list", "data": .array(all.map(\.json))])
    }

    func file(_ ex: FastCGIExchange, _ id: String, content: Bool) {
        guard let f = files.get()[id] else { return notFound(ex, id) }
        if content {
            stats.update { $0.contentReads += 1 }
            ex.respondJSON(status: 200, ["content": .string(f.content), "file_type": "text/plain", "filename": .string(f.filename),
                                         "title": "", "type": "file"])
        } else {
            ex.respondJSON(status: 200, f.json)
        }
    }

    func deleteFile(_ ex: FastCGIExchange, _ id: String) {
        guard files.update({ $0.removeValue(forKey: id) }) != nil else { return notFound(ex, id) }
        stats.update { $0.deletes += 1 }
        ex.respondJSON(status: 200, ["id": .string(id), "object": "file", "deleted": true])
    }

    func notFound(_ ex: FastCGIExchange, _ id: String) {
        error(ex, 404, "resource_not_found_error", "File not found: \(id)")
    }

    /// A chat-shaped body's tokens, deterministically: a quarter of its
    /// characters (Unicode scalars), at least one.
    func estimate(_ ex: FastCGIExchange, _ req: Request) {
        guard let body = try? JSON.parse(req.body), let messages = body["messages"]?.arrayValue else {
            return error(ex, 400, "invalid_request_error", "Invalid request: messages is required")
        }
        let chars = messages.reduce(0) { $0 + ($1["content"]?.stringValue?.unicodeScalars.count ?? 0) }
        ex.respondJSON(status: 200, ["code": 0, "data": ["total_tokens": .number(Self.tokens(characters: chars))], "scode": "0x0", "status": true])
    }

    static func tokens(characters: Int) -> Int { max(1, characters / 4) }
}
