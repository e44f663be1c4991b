/// The Kimi API's models as this gateway knows them: the default allow-list
/// (`upstream.models`), the fallback for `/v1/models` when the upstream
/// cannot be reached, and the list the simulator serves. The upstream's own
/// `GET /models` is the truth; this is the one place it is written down.
public enum KimiModels {
    public static let catalogue: [GatewayConfig.Model] = [
        .init(id: "moonshot-v1-8k", contextLength: 8192),
        .init(id: "moonshot-v1-32k", contextLength: 32768),
        .init(id: "moonshot-v1-128k", contextLength: 131072),
        .init(id: "moonshot-v1-auto", contextLength: 131072),
        .init(id: "kimi-k2-0905-preview", contextLength: 262144),
        .init(id: "kimi-k2-turbo-preview", contextLength: 262144),
        .init(id: "kimi-k2-thinking", contextLength: 262144),
    ]
}
