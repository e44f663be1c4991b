extension String {
    /// Without leading and trailing spaces, tabs, CR and LF.
    public func trimmingSpaces() -> String {
        // Fast path (every header value goes through here): nothing to trim.
        func space(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
        if let f = utf8.first, let l = utf8.last, !space(f), !space(l) { return self }
        if isEmpty { return self }
        // "\r\n" is one Character (one grapheme cluster) in Swift.
        func space(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\r\n" }
        var s = Substring(self)
        while let f = s.first, space(f) { s.removeFirst() }
        while let l = s.last, space(l) { s.removeLast() }
        return String(s)
    }

    /// Spaces as `_`: one access-log word.
    public func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}
