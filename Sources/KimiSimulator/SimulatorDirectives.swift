import KimiCore

/// How a request steers the simulator: `[sim:key=value,flag,...]` anywhere
/// in the last user message, e.g. `[sim:tokens=200,delay=20,id=t1]`.
///
/// - tokens=N   tokens in the answer (default KIMI_SIM_TOKENS or 24)
/// - delay=MS   pause before each token after the first (KIMI_SIM_DELAY_MS)
/// - first=MS   pause before the first token (KIMI_SIM_FIRST_MS); in an
///              uploaded file's text, before the upload's answer
/// - error=CODE answer with that upstream error (400, 401, 403, 429, 500, 503)
/// - hang=MS    send nothing for MS (default 60000), then answer
/// - cut=N      end a stream after N content chunks, with no usage and no [DONE]
/// - overloaded=N  the first N attempts of this request (by X-Request-Id)
///              answer 429 `engine_overloaded_error`, as Kimi does when out
///              of capacity; the next one answers
/// - spelling=compact|spaced|random  how the answer's JSON is spelled
///              (default KIMI_SIM_SPELLING or compact): Kimi's JSON may
///              carry any valid whitespace and escapes (`JSONRespelling`)
/// - reasoning=N  N `reasoning_content` chunks before the answer (thinking
///              models reason min(8, tokens) by default)
/// - cached=N   N of the prompt's tokens were cache hits (at most the
///              prompt): the usage says so in Kimi's spelling (top-level
///              `cached_tokens`) or OpenAI's (`prompt_tokens_details`),
///              chosen at random per answer, as the real API may vary
/// - id=NAME    record this request's fate under NAME in /sim/stats
/// - tool=NAME  call the request's tool NAME (its first tool when NAME is
///              not among them) instead of answering: `tool_calls`, the
///              arguments split across stream chunks
/// Also steered by the request itself: `n` choices, `response_format`
/// `json_object` (the answer becomes a JSON object), thinking models
/// (`reasoning_content` first).
struct SimulatorDirectives: Equatable {
    var tokens: Int
    var delayMs: Int
    var firstMs: Int
    var error: Int?
    var hangMs: Int?
    var cut: Int?
    var id: String?
    var tool: String?
    var overloaded = 0
    var spelling = JSONRespelling.Style.compact
    var reasoning: Int?
    var cached: Int?

    static func parse(_ text: String, defaults: SimulatorDirectives) -> SimulatorDirectives {
        var d = defaults
        var rest = Substring(text)
        while let open = rest.firstRange(of: "[sim:") {
            let after = rest[open.upperBound...]
            guard let close = after.firstIndex(of: "]") else { break }
            for item in after[..<close].split(separator: ",") {
                let kv = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces() }
                let key = kv[0]
                let value = kv.count > 1 ? kv[1] : ""
                let n = Int(value)
                switch key {
                case "tokens": if let n, n >= 0 { d.tokens = min(n, 100_000) }
                // Pauses are capped at 10 minutes: directives come from requests.
                case "delay": if let n, n >= 0 { d.delayMs = min(n, 600_000) }
                case "first": if let n, n >= 0 { d.firstMs = min(n, 600_000) }
                case "error": d.error = n
                case "hang": d.hangMs = min(max(n ?? 60_000, 0), 600_000)
                case "cut": d.cut = n
                case "id": d.id = String(value.prefix(64))
                case "tool": d.tool = String(value.prefix(64))
                case "overloaded": if let n, n >= 0 { d.overloaded = min(n, 100) }
                case "spelling": if let s = JSONRespelling.Style(rawValue: value) { d.spelling = s }
                case "reasoning": if let n, n >= 0 { d.reasoning = min(n, 100_000) }
                case "cached": if let n, n >= 0 { d.cached = n }
                default: break
                }
            }
            rest = after[close...]
        }
        return d
    }
}

/// Deterministic answer text: the same prompt always gives the same words.
enum SimulatorText {
    static let words = ["Kimi", "answers", "from", "the", "simulator", "with", "steady", "deterministic", "words",
                        "so", "tests", "can", "compare", "every", "token", "they", "receive", "against", "what",
                        "was", "sent", "through", "nginx", "and", "the", "gateway", "today", "quickly"]

    static func tokens(prompt: String, count: Int) -> [String] {
        var h: UInt64 = 0xcbf29ce484222325
        for b in prompt.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return (0..<count).map { i in
            h = h &* 6364136223846793005 &+ 1442695040888963407 // an LCG step (Knuth's MMIX constants)
            let w = words[Int((h >> 33) % UInt64(words.count))]
            return i == count - 1 ? w + "." : w + " "
        }
    }
}
