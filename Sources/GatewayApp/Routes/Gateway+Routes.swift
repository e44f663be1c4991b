import KimiCore

extension Gateway {
    /// Every route of both faces, registered in one place.
    func registerRoutes() {
        add("GET", "/health", health)
        add("GET", "/api/info", info)
        add("POST", "/api/chat/completion", appCompletion)
        add("POST", "/api/chat/history", appHistory)
        add("POST", "/api/chat/stream", appStream)
        add("GET", "/api/chat/models", appModels)
        add("POST", "/v1/chat/completions", openAIChat)
        add("GET", "/v1/models", openAIModels)
    }
}
