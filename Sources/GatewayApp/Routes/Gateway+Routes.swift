import KimiCore

extension Gateway {
    /// Every route of both faces, registered in one place with what a caller
    /// must show (`Access`); the middleware asks the matched route.
    func registerRoutes() {
        add("GET", "/health", access: .open, servesWhenSaturated: true, health)
        add("GET", "/metrics", access: .monitor, servesWhenSaturated: true, metrics)
        add("GET", "/api/info", access: .client, info)
        add("POST", "/api/chat/completion", access: .client, appCompletion)
        add("POST", "/api/chat/history", access: .client, appHistory)
        add("POST", "/api/chat/stream", access: .client, appStream)
        add("GET", "/api/chat/models", access: .client, appModels)
        add("GET", "/api/usage", access: .client, usage)
        add("GET", "/api/admin/usage", access: .admin, adminUsage)
        add("POST", "/api/admin/keys", access: .admin, createKey)
        add("GET", "/api/admin/keys", access: .admin, listKeys)
        add("GET", "/api/admin/keys/{id}", access: .admin, getKey)
        add("PATCH", "/api/admin/keys/{id}", access: .admin, updateKey)
        add("DELETE", "/api/admin/keys/{id}", access: .admin, revokeKey)
        add("POST", "/api/admin/keys/{id}/rotate", access: .admin, rotateKey)
        add("GET", "/api/keys/me", access: .client, keyMe)
        add("POST", "/api/chat/document", access: .client, body: .streamed, documentChat)
        add("POST", "/v1/chat/completions", access: .client, openAIChat)
        add("POST", "/v1/messages", access: .client, face: .anthropic, anthropicMessages)
        add("POST", "/v1/messages/count_tokens", access: .client, face: .anthropic, anthropicCountTokens)
        add("GET", "/v1/models", access: .client, openAIModels)
        add("POST", "/v1/files", access: .client, body: .streamed, uploadFile)
        add("GET", "/v1/files", access: .client, listFiles)
        add("GET", "/v1/files/{id}", access: .client, getFile)
        add("DELETE", "/v1/files/{id}", access: .client, deleteFile)
        add("GET", "/v1/files/{id}/content", access: .client, fileContent)
        add("POST", "/v1/tokenizers/estimate-token-count", access: .client, estimateTokens)
        add("GET", "/v1/users/me/balance", access: .admin, balance)
    }
}
