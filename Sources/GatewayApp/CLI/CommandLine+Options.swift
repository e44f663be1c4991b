/// `--name value` / `--name=value` options and positional arguments.
struct Options {
    var values: [String: String] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    init(_ args: ArraySlice<String>, flags known: Set<String> = []) throws {
        var it = args.makeIterator()
        while let a = it.next() {
            if a.hasPrefix("--") {
                let body = a.dropFirst(2)
                if let eq = body.firstIndex(of: "=") {
                    values[String(body[..<eq])] = String(body[body.index(after: eq)...])
                } else if known.contains(String(body)) {
                    flags.insert(String(body))
                } else {
                    guard let v = it.next() else { throw UsageError("option \(a) needs a value") }
                    values[String(body)] = v
                }
            } else {
                positional.append(a)
            }
        }
    }

    func check(allowed: Set<String>) throws {
        for k in values.keys where !allowed.contains(k) { throw UsageError("unknown option --\(k)") }
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
