import KimiCore

extension RequestContext {
    /// The chat request validated against this request's model list, its
    /// model noted for the access log.
    func validatedChat(_ openAIBody: JSON) throws -> ChatRequest {
        let chat = try ChatValidation.validate(openAIBody, config: config, allowedModels: allowedModels)
        logNotes.append("model=\(HeaderSafety.printable(chat.model, max: 60))")
        return chat
    }

    /// The models this request may use: the key's own list, else all configured.
    var allowedModels: [String] {
        if let k = apiKey, !k.models.isEmpty { return k.models }
        return config.upstream.models.map(\.id)
    }
}
