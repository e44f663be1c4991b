import KimiCore

extension RequestContext {
    /// The chat request validated against the models this request may use
    /// (the upstream's list, narrowed by the config and the key), its model
    /// noted for the access log.
    func validatedChat(_ openAIBody: JSON, services: Services) throws -> ChatRequest {
        let chat = try ChatValidation.validateShape(openAIBody, config: config)
        let catalogue = services.models.catalogue(config: config, budget: services.buffers, lookingFor: chat.model)
        try ChatValidation.checkModel(chat.model, allowed: catalogue.models(for: apiKey).map(\.id))
        usage = UsageCapture(model: chat.model, stream: chat.stream, promptCharacters: chat.characters)
        logNotes.append("model=\(HeaderSafety.printable(chat.model, max: 60))")
        return chat
    }
}
