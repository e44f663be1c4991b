/// `.env` files as dotenv reads them: `KEY=VALUE` lines, `#` comments, an
/// optional `export ` prefix, values optionally in single or double quotes.
/// Variables already in the process environment win (dotenv's rule).
public enum DotEnv {
    public static func parse(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = String(raw).trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingSpaces() }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq]).trimmingSpaces()
            var value = String(line[line.index(after: eq)...]).trimmingSpaces()
            if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f {
                value = String(value.dropFirst().dropLast())
                if f == "\"" { value = value.replacingEscapedNewlines() }
            } else if let hash = value.firstRange(of: " #") {
                value = String(value[..<hash.lowerBound]).trimmingSpaces()
            }
            guard !key.isEmpty, key.utf8.allSatisfy({ $0 == 0x5F || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }) else { continue }
            out[key] = value
        }
        return out
    }

    /// The environment as the gateway sees it: `.env` under the real environment.
    public static func merged(dotEnv: [String: String], processEnv: [String: String]) -> [String: String] {
        dotEnv.merging(processEnv) { _, real in real }
    }
}

extension String {
    func replacingEscapedNewlines() -> String {
        var out = ""
        var it = makeIterator()
        while let c = it.next() {
            if c == "\\", let n = it.next() { out.append(n == "n" ? "\n" : n) } else { out.append(c) }
        }
        return out
    }
}
