/// What a chat request's prompt will cost before the upstream says so: the
/// figure the token limit and the budgets reserve. It covers everything Kimi
/// bills as prompt tokens — every message in all its content parts and
/// fields (`tool_calls`, `reasoning_content`, `name`…), `tools`,
/// `response_format` and any other field that is not a sampling knob — so a
/// request cannot ride past a limit on what the estimate leaves out (20 KB
/// of `tools` with a two-letter message was 64× a token limit when only
/// message text was counted).
///
/// Text counts a token per 4 UTF-8 bytes: Kimi's tokenizer averages about 4
/// characters a token on English and 1.5–2 CJK characters a token (3 bytes
/// each), so bytes / 4 is at or above the real count for both. Images and
/// videos are billed by their pixels, not by the bytes of their URL or data
/// URL (a base64 photo would read as ~10⁶ tokens): each counts a fixed
/// upper bound. The settlement charges or refunds the difference once the
/// upstream reports its usage.
public enum PromptEstimate {
    /// An image part (`image_url`): Kimi's vision models resize large
    /// images; 4,096 tokens is above what one costs at the largest size.
    public static let imageTokens = 4_096
    /// A video part (`video_url`): sampled frames, each an image.
    public static let videoTokens = 16_384
    /// Per message: role and framing tokens.
    static let messageOverhead = 4

    /// Top-level fields that are not prompt: numbers and switches.
    static let notPrompt: Set<String> = [
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "n", "presence_penalty", "frequency_penalty", "stop", "seed", "user", "reasoning_effort", "logprobs", "top_logprobs",
        // Anthropic's Messages (`system` and `tools` are prompt there too).
        "top_k", "stop_sequences", "metadata", "thinking",
    ]

    /// Prompt tokens of an OpenAI-shaped chat body (at least 1).
    public static func tokens(_ body: JSON) -> Int {
        var bytes = 0
        var fixed = 0
        if let messages = body["messages"]?.arrayValue {
            for m in messages {
                fixed &+= messageOverhead
                guard let members = m.objectValue else { bytes &+= size(m); continue }
                for (name, value) in members {
                    if name == "content", let parts = value.arrayValue {
                        for p in parts { contentPart(p, bytes: &bytes, fixed: &fixed) }
                    } else if name != "role" {
                        bytes &+= size(value)
                    }
                }
            }
        }
        for (name, value) in body.objectValue ?? [] where !notPrompt.contains(name) { bytes &+= size(value) }
        return max(1, (bytes / 4) &+ (bytes % 4 == 0 ? 0 : 1) &+ fixed)
    }

    /// The tokens of plain text (the document route's system message).
    public static func tokens(text: String) -> Int { max(1, (text.utf8.count + 3) / 4) }

    private static func contentPart(_ p: JSON, bytes: inout Int, fixed: inout Int) {
        switch p["type"]?.stringValue {
        case "text": bytes &+= size(p["text"] ?? .null)
        // OpenAI's image part, and Anthropic's image block (base64 or URL).
        case "image_url", "image": fixed &+= imageTokens
        case "video_url": fixed &+= videoTokens
        // Anthropic's tool result holds blocks of its own (a screenshot too).
        case "tool_result" where p["content"]?.arrayValue != nil:
            for (name, value) in p.objectValue ?? [] where name != "content" { bytes &+= name.utf8.count &+ size(value) }
            for inner in p["content"]!.arrayValue! { contentPart(inner, bytes: &bytes, fixed: &fixed) }
        default: bytes &+= size(p)
        }
    }

    /// UTF-8 bytes of a value's text: strings as they are, numbers as
    /// written, containers by their members (names included; no syntax).
    static func size(_ v: JSON) -> Int {
        switch v {
        case .null, .bool: return 4
        case let .number(n): return n.utf8.count
        case let .string(s): return s.utf8.count
        case let .array(items): return items.reduce(0) { $0 &+ size($1) &+ 1 }
        case let .object(members): return members.reduce(0) { $0 &+ $1.0.utf8.count &+ size($1.1) &+ 2 }
        }
    }
}
