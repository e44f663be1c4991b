import Glibc
import KimiCore
import Storage
import Upstream

/// `POST /api/chat/document`: questions about a long document, the document
/// processed once. Multipart (`file`, `message`, optional `model`, `stream`,
/// `system`, `history` as JSON, `max_tokens`, `temperature`) or JSON
/// (`{"fileId", "message", ...}` for a file this key uploaded earlier).
/// The file is spooled to disk while its SHA-256 is computed; a document
/// seen before (by any client) is answered from the shared cache of
/// extracted texts, with no upload and no extraction. Kimi's documented
/// pattern: upload with `purpose=file-extract`, fetch the content, put the
/// text in a system message. `model: "auto"` (the default) picks the
/// smallest allowed context that holds prompt and answer, by the upstream
/// tokenizer's estimate.
extension Gateway {
    struct DocumentQuestion {
        var message = ""
        var model = "auto"
        var stream = false
        var system: String?
        var history: [JSON] = []
        var maxTokens: Int?
        var temperature: JSON?
        var fileID: String?
        var include: Set<AppChatRequest.StreamExtra> = []
    }

    struct Spool {
        let path: String
        let sha256: String
        let filename: String
        let bytes: Int
    }

    func documentChat(_ ctx: RequestContext) throws {
        let registry = try services.fileRegistry()
        let cache = try services.documentCache()
        guard let source = ctx.bodySource else { throw GatewayError.badRequest("Request body is required") }
        let type = ctx.request.header("content-type") ?? ""
        var question: DocumentQuestion
        var spool: Spool?
        defer { if let spool { unlink(spool.path) } }
        if let parser = MultipartParser(contentType: type) {
            (question, spool) = try readMultipart(source, parser: parser, spoolTemplate: cache.spoolTemplate, fieldCap: ctx.config.server.maxBodyBytes)
        } else if type.lowercased().hasPrefix("application/json") {
            guard source.remaining <= ctx.config.server.maxBodyBytes else { throw GatewayError.payloadTooLarge(limit: ctx.config.server.maxBodyBytes) }
            question = try Self.question(fromJSON: try readWhole(source))
        } else {
            throw GatewayError.badRequest("Content-Type must be multipart/form-data (file, message) or application/json (fileId, message)")
        }
        guard !question.message.trimmingSpaces().isEmpty else { throw GatewayError.badRequest("'message' is required") }
        // Everything that can refuse the question without the document is
        // checked before anything goes upstream (no upload, no extraction,
        // no tokenizer call for a question that will be refused): its shape
        // and file references, then the budgets and the token limit with
        // the least it can reserve (the question without the document).
        var shape: JSON = ["messages": .array(question.history + [["role": "user", "content": .string(question.message)]])]
        if let m = question.maxTokens { shape = shape.setting("max_tokens", .number(m)) }
        if let t = question.temperature { shape = shape.setting("temperature", t) }
        _ = try ChatValidation.validateShape(shape.setting("model", "x"), config: ctx.config)
        try ctx.checkFileReferences(shape, services: services)
        _ = try ctx.admitChat(UsageCapture(model: question.model == "auto" ? "" : question.model, stream: question.stream, promptTokens: PromptEstimate.tokens(shape), tokenBound: .max),
                              completionTokens: question.maxTokens, choices: 1, services: services, dryRun: true)

        // The document's text: from the cache, or uploaded and extracted once.
        let owner = FileOwner.of(key: ctx.apiKey, authRequired: ctx.config.auth.required)
        let admin = ctx.apiKey?.role == .admin
        var document: DocumentCache.Entry
        var cached: Bool
        var fromCache = true // for the log: whether anything was uploaded or extracted
        var ownFileID: String?
        var held = 0
        defer { services.buffers.release(held) }
        let largest = services.models.catalogue(config: ctx.config, budget: services.buffers).models(for: ctx.apiKey).map(\.contextLength).max() ?? 0
        // A cached text, held within the buffer budget before it is loaded.
        func cachedText(_ key: String) throws -> DocumentCache.Entry? {
            guard let size = cache.size(key) else { return nil }
            services.buffers.release(held)
            held = 0
            held = try holdDocument(bytes: size, largestContext: largest)
            return cache.get(key)
        }
        // A new document is uploaded and extracted once on the machine: the
        // questions that arrive meanwhile wait for its text (single flight).
        let waitMs = min(ctx.config.upstream.totalTimeoutMs, 120_000)
        if let spool {
            let key = DocumentChat.cacheKey(sha256: spool.sha256, filename: spool.filename)
            var extracted = false
            if let hit = try cachedText(key) { document = hit } else {
                document = try cache.exclusively(key, waitMs: waitMs) {
                    if let hit = try cachedText(key) { return hit }
                    // The extraction's upload is deleted upstream once its text
                    // is cached: it holds a place of the account's 1,000 files
                    // and 10 GB only while it is read.
                    let id = try uploadSpool(spool, ctx: ctx, registry: registry, owner: owner)
                    let text: String
                    do { text = try extractedText(id, ctx: ctx) } catch {
                        forgetUpload(id, ctx: ctx, registry: registry)
                        throw error
                    }
                    let entry = DocumentCache.Entry(content: text, filename: spool.filename, fileID: "")
                    cache.put(key, entry)
                    forgetUpload(id, ctx: ctx, registry: registry)
                    extracted = true
                    return entry
                }
            }
            document.filename = spool.filename
            // `cached` speaks only of this key's own earlier questions (that
            // someone else asked about these bytes is theirs to know).
            let askedBefore = (try? registry.noteDocumentAsked(key, by: owner)) ?? false
            (cached, ownFileID, fromCache) = (!extracted && askedBefore, nil, !extracted)
        } else if let id = question.fileID {
            let recorded = Router<Int>.isID(Substring(id)) ? try registry.owner(of: id) : nil
            guard Router<Int>.isID(Substring(id)), admin || recorded == owner else { throw GatewayError.fileNotFound(id) }
            var extracted = false
            if let hit = try cachedText("file-" + id) { document = hit } else {
                document = try cache.exclusively("file-" + id, waitMs: waitMs) {
                    if let hit = try cachedText("file-" + id) { return hit }
                    let meta = try ctx.upstreamCall(services, "GET", "/files/\(id)", pinned: true)
                    let filename = (try? JSON.parse(meta.body))?["filename"]?.stringValue ?? ""
                    let entry = DocumentCache.Entry(content: try extractedText(id, ctx: ctx), filename: filename, fileID: id)
                    cache.put("file-" + id, entry)
                    extracted = true
                    return entry
                }
            }
            (cached, fromCache) = (!extracted, !extracted)
            ownFileID = id
        } else {
            throw GatewayError.badRequest("A 'file' part (multipart) or a 'fileId' is required")
        }
        ctx.logNotes.append("document=\(fromCache ? "cached" : "extracted")")

        // The question's own parts obey the chat rules; the document only the model's context.
        let messages = DocumentChat.messages(document: document.content, system: question.system, history: question.history, message: question.message)

        let allowed = services.models.catalogue(config: ctx.config, budget: services.buffers).models(for: ctx.apiKey)
        let estimate = try estimateTokens(messages, model: question.model == "auto" ? (allowed.first?.id ?? ctx.config.upstream.defaultModel) : question.model, ctx: ctx)
        var model = question.model
        if model == "auto" {
            let reserve = question.maxTokens ?? ctx.config.documents.answerReserveTokens
            switch DocumentChat.pickModel(promptTokens: estimate, answerTokens: reserve, among: allowed) {
            case let .model(m): model = m
            case let .tooLong(largest):
                throw GatewayError.badRequest("The document and question need about \(estimate) tokens plus \(reserve) for the answer; the largest allowed context is \(largest)")
            }
        } else {
            try ChatValidation.checkModel(model, allowed: allowed.map(\.id))
        }
        let context = allowed.first { $0.id == model }?.contextLength ?? KimiModels.contextLength(model)
        // A model named by the client gets the same check as `auto`'s pick
        // (without it a 10M-token prompt went upstream to an 8K model).
        let reserve = question.maxTokens ?? ctx.config.documents.answerReserveTokens
        guard estimate.addingSaturated(reserve) <= context else {
            throw GatewayError.badRequest("The document and question need about \(estimate) tokens plus \(reserve) for the answer; the context of \(HeaderSafety.printable(model, max: 60)) is \(context)")
        }
        ctx.logNotes.append("model=\(HeaderSafety.printable(model, max: 60)) estimate=\(estimate)")
        let cap = try ctx.admitChat(UsageCapture(model: model, stream: question.stream, promptTokens: estimate,
                                                 tokenBound: context.addingSaturated(question.maxTokens ?? ctx.config.limits.maxTokens)),
                                    completionTokens: question.maxTokens, choices: 1, services: services)

        var body: JSON = ["model": .string(model), "messages": .array(messages)]
        if let m = question.maxTokens ?? cap { body = body.setting("max_tokens", .number(m)) }
        if let t = question.temperature { body = body.setting("temperature", t) }
        let info: JSON = ["fileId": ownFileID.map { .string($0) } ?? .null, "filename": .string(document.filename),
                          "tokens": .number(estimate), "cached": .bool(cached)]
        if question.stream {
            try streamAnswer(ctx, body: body.setting("stream", true), lead: ["document": info, "model": .string(model)], extras: question.include)
        } else {
            let call = try ctx.upstreamCall(services, "POST", "/chat/completions", body: body.serializedBytes(),
                                            maxBytes: ChatRequest.answerByteCap(maxTokens: question.maxTokens ?? ctx.config.limits.maxTokens, choices: 1))
            try respondAppAnswer(ctx, call: call, model: model, extra: [("document", info), ("estimate", .number(estimate))])
        }
    }

    /// Memory for a cached document while its question runs — the file
    /// read whole, its parsed text and the prompt built from it, ~3× the
    /// file — reserved in the process's buffer budget before it is loaded
    /// (8 questions about a cached 32 MiB document took 26 → 539 MB with
    /// nothing bounding them). A document too long for every allowed model
    /// even at 8 bytes a token is refused without loading it. Returns the
    /// bytes held (released when the request ends).
    func holdDocument(bytes: Int, largestContext: Int) throws -> Int {
        guard bytes / 8 <= largestContext else {
            throw GatewayError.badRequest("The document is too long for every allowed model: \(bytes) bytes of text, the largest context is \(largestContext) tokens")
        }
        let need = bytes.addingSaturated(bytes).addingSaturated(bytes)
        guard need <= services.buffers.limitBytes else {
            throw GatewayError.badRequest("The document is too large for this gateway's buffers: it needs \(need) bytes, server.maxBufferedBytes is \(services.buffers.limitBytes)")
        }
        guard services.buffers.reserve(need) else { throw GatewayError.buffersFull("this document", retryAfter: 1) }
        return need
    }

    // MARK: reading the request

    func readMultipart(_ source: RequestBodySource, parser: MultipartParser, spoolTemplate: String, fieldCap: Int) throws -> (DocumentQuestion, Spool?) {
        var parser = parser
        var fields: [String: [UInt8]] = [:]
        var fieldBytes = 0
        var current: MultipartParser.Part?
        var fd: Int32 = -1
        var spoolPath = ""
        var filename = ""
        var bytes = 0
        let hasher = SHA256.Hasher()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var failed = true
        defer {
            if fd >= 0 { close(fd) }
            if failed, !spoolPath.isEmpty { unlink(spoolPath) }
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { source.read(into: $0) }
            guard let n else { throw GatewayError.badRequest("Request body is shorter than its Content-Length") }
            if n == 0 { break }
            let events: [MultipartParser.Event]
            do { events = try buffer.withUnsafeBytes { try parser.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) } } catch {
                throw GatewayError.badRequest("Malformed multipart body: \(error)")
            }
            for e in events {
                switch e {
                case let .begin(part):
                    current = part
                    if part.name == "file" {
                        guard fd < 0 else { throw GatewayError.badRequest("Only one 'file' part is allowed") }
                        var template = Array(spoolTemplate.utf8CString)
                        fd = mkstemp(&template)
                        guard fd >= 0 else { throw GatewayError.storageUnavailable("Cannot spool the upload: \(String(cString: strerror(errno)))") }
                        spoolPath = String(cString: template)
                        filename = HeaderSafety.printable(part.filename ?? "document", max: 200)
                    }
                case let .data(d):
                    if current?.name == "file" {
                        bytes += d.count
                        hasher.update(d)
                        guard d.withUnsafeBytes({ FileIO.writeAll(fd, $0) }) else { throw GatewayError.storageUnavailable("Cannot spool the upload") }
                    } else if let name = current?.name {
                        fieldBytes += d.count
                        guard fieldBytes <= fieldCap else { throw GatewayError.payloadTooLarge(limit: fieldCap) }
                        fields[name, default: []] += d
                    }
                case .end:
                    current = nil
                }
            }
        }
        guard parser.isComplete else { throw GatewayError.badRequest("Malformed multipart body: no closing boundary") }
        var q = DocumentQuestion()
        func text(_ k: String) -> String? { fields[k].map { String(decoding: $0, as: UTF8.self) } }
        q.message = text("message") ?? ""
        if let m = text("model"), !m.isEmpty { q.model = m }
        if let s = text("stream") { q.stream = ["true", "1", "yes", "on"].contains(s.trimmingSpaces().lowercased()) }
        q.system = text("system")
        if let h = text("history"), !h.trimmingSpaces().isEmpty {
            guard let list = (try? JSON.parse(Array(h.utf8)))?.arrayValue else { throw GatewayError.badRequest("'history' must be a JSON array of messages") }
            q.history = list
        }
        if let m = text("max_tokens") {
            guard let n = Int(m.trimmingSpaces()) else { throw GatewayError.badRequest("'max_tokens' must be an integer") }
            q.maxTokens = n
        }
        if let t = text("temperature") {
            guard Double(t.trimmingSpaces()) != nil else { throw GatewayError.badRequest("'temperature' must be a number") }
            q.temperature = .number(t.trimmingSpaces())
        }
        if let i = text("include") { q.include = try AppChatRequest.streamExtras(["include": .array(i.split(separator: ",").map { .string(String($0).trimmingSpaces()) })]) }
        q.fileID = text("fileId")
        failed = false
        guard fd >= 0 else { return (q, nil) }
        return (q, Spool(path: spoolPath, sha256: hasher.finalHex(), filename: filename, bytes: bytes))
    }

    static func question(fromJSON bytes: [UInt8]) throws -> DocumentQuestion {
        let j: JSON
        do { j = try JSON.parse(bytes) } catch { throw GatewayError.badRequest("Request body is not valid JSON: \(error)") }
        guard j.objectValue != nil else { throw GatewayError.badRequest("Request body must be a JSON object") }
        var q = DocumentQuestion()
        guard let m = j["message"]?.stringValue else { throw GatewayError.badRequest("'message' is required and must be a string") }
        q.message = m
        if let v = j["model"], !v.isNull { guard let s = v.stringValue else { throw GatewayError.badRequest("'model' must be a string") }; q.model = s }
        if let v = j["stream"], !v.isNull { guard let b = v.boolValue else { throw GatewayError.badRequest("'stream' must be a boolean") }; q.stream = b }
        if let v = j["system"], !v.isNull { guard let s = v.stringValue else { throw GatewayError.badRequest("'system' must be a string") }; q.system = s }
        if let v = j["history"], !v.isNull { guard let a = v.arrayValue else { throw GatewayError.badRequest("'history' must be an array") }; q.history = a }
        if let v = j["max_tokens"], !v.isNull { guard let n = v.intValue else { throw GatewayError.badRequest("'max_tokens' must be an integer") }; q.maxTokens = n }
        if let v = j["temperature"], !v.isNull { q.temperature = v }
        if let v = j["fileId"], !v.isNull { guard let s = v.stringValue else { throw GatewayError.badRequest("'fileId' must be a string") }; q.fileID = s }
        q.include = try AppChatRequest.streamExtras(j)
        return q
    }

    func readWhole(_ source: RequestBodySource) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: source.remaining)
        var got = 0
        while got < out.count {
            let n = out.withUnsafeMutableBytes { source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[got...])) }
            guard let n, n > 0 else { throw GatewayError.badRequest("Request body is shorter than its Content-Length") }
            got += n
        }
        return out
    }

    // MARK: the upstream

    /// The spooled file to `POST /files` (`purpose=file-extract`), recorded as this client's.
    func uploadSpool(_ spool: Spool, ctx: RequestContext, registry: FileRegistry, owner: String) throws -> String {
        let stream = try SpoolUpload(spool)
        let call = try ctx.upstreamCall(services, "POST", "/files", pinned: true, retries: 0) { req in
            req.bodyStream = stream
            req.bodyLength = stream.length
            req.contentType = "multipart/form-data; boundary=\(stream.boundary)"
        }
        guard let file = try? JSON.parse(call.body), let id = file["id"]?.stringValue, !id.isEmpty else {
            throw GatewayError.upstreamFailed("Upstream answer is not a file object")
        }
        try registry.record(.init(id: id, owner: owner, filename: spool.filename, bytes: spool.bytes, purpose: "file-extract"))
        return id
    }

    /// Deletes an extraction's upload upstream and forgets it; when the
    /// upstream does not agree, the record stays (its owner sees the file
    /// in `/v1/files`, can delete it, and it counts against the key's quota).
    func forgetUpload(_ id: String, ctx: RequestContext, registry: FileRegistry) {
        do {
            _ = try ctx.upstreamCall(services, "DELETE", "/files/\(id)", pinned: true)
            try registry.remove(id)
        } catch {
            Log.warn("document: the extraction upload \(HeaderSafety.printable(id, max: 64)) was not deleted upstream (\(error)); it stays its owner's file")
        }
    }

    func extractedText(_ id: String, ctx: RequestContext) throws -> String {
        let call = try ctx.upstreamCall(services, "GET", "/files/\(id)/content", maxBytes: 64 << 20, pinned: true)
        guard let content = (try? JSON.parse(call.body))?["content"]?.stringValue else {
            throw GatewayError.upstreamFailed("Upstream file content has no text")
        }
        return content
    }

    /// The upstream tokenizer's count for these messages.
    func estimateTokens(_ messages: [JSON], model: String, ctx: RequestContext) throws -> Int {
        let body: JSON = ["model": .string(model), "messages": .array(messages)]
        let call = try ctx.upstreamCall(services, "POST", "/tokenizers/estimate-token-count", body: body.serializedBytes())
        guard let n = (try? JSON.parse(call.body))?["data"]?["total_tokens"]?.intValue else {
            throw GatewayError.upstreamFailed("Upstream tokenizer answer has no total_tokens")
        }
        return n
    }
}

/// A spooled upload as a multipart body for `POST /files`: the head, the
/// file read from disk in pieces, the tail.
final class SpoolUpload: UpstreamBodyStream {
    let boundary = "kimi-gateway-" + RequestID.fresh()
    private let head: [UInt8]
    private let tail: [UInt8]
    private let fd: Int32
    let length: Int
    private var sent = 0
    private let fileBytes: Int

    init(_ spool: Gateway.Spool) throws {
        let name = String(spool.filename.map { $0 == "\"" || $0 == "\\" ? "_" : $0 })
        head = Array(("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfile-extract\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n").utf8)
        tail = Array("\r\n--\(boundary)--\r\n".utf8)
        fd = open(spool.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GatewayError.storageUnavailable("Cannot read the spooled upload") }
        fileBytes = spool.bytes
        length = head.count + spool.bytes + tail.count
    }

    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        if sent < head.count {
            let n = min(buffer.count, head.count - sent)
            head.withUnsafeBytes { base.copyMemory(from: $0.baseAddress! + sent, byteCount: n) }
            sent += n
            return n
        }
        if sent < head.count + fileBytes {
            let n = Glibc.read(fd, base, min(buffer.count, head.count + fileBytes - sent))
            guard n > 0 else { return nil }
            sent += n
            return n
        }
        let offset = sent - head.count - fileBytes
        guard offset < tail.count else { return 0 }
        let n = min(buffer.count, tail.count - offset)
        tail.withUnsafeBytes { base.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        sent += n
        return n
    }
}
