/// `application/x-www-form-urlencoded` query strings (`a=1&b=x%20y`): the
/// first value of a name, percent-decoded (`+` as space); nil when the
/// name is absent or its value is not valid UTF-8.
public enum URLQuery {
    public static func value(_ name: String, in query: String) -> String? {
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard decode(kv[0]) == name else { continue }
            return kv.count > 1 ? decode(kv[1]) : ""
        }
        return nil
    }

    static func decode(_ s: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = s.utf8.makeIterator()
        while let b = bytes.next() {
            if b == 0x2B { out.append(0x20); continue }
            guard b == 0x25 else { out.append(b); continue }
            guard let h = bytes.next().flatMap(RoutePath.hex), let l = bytes.next().flatMap(RoutePath.hex) else { return nil }
            out.append(h << 4 | l)
        }
        return String(validating: out, as: UTF8.self)
    }
}
