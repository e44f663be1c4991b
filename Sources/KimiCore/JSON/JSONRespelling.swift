/// The same JSON value spelled another way: whitespace between tokens and
/// ASCII letters of strings (member names too) written as `\u00XX`
/// escapes, chosen by a seed. The value is unchanged — RFC 8259 §2 allows
/// whitespace around every structural character and §7 any character as an
/// escape — so anything the gateway reads from upstream JSON must give the
/// same answer for every respelling (the simulator answers in them; the
/// fuzz target `chunk` checks `ChunkText` against them).
public enum JSONRespelling {
    public enum Style: String, Sendable, CaseIterable {
        /// As serialized: no whitespace, no needless escapes.
        case compact
        /// A space after every `:` and `,`, inside `[ ]` and `{ }`.
        case spaced
        /// Random spaces and tabs, and random letters escaped. (No line
        /// breaks: an SSE `data:` line carries one line of JSON, and a CR in
        /// it would end the line for any SSE parser.)
        case random
    }

    /// `bytes` must be valid JSON; the result parses to the same value.
    public static func respell(_ bytes: [UInt8], style: Style, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
        guard style != .compact else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        var rng = seed | 1
        func chance(_ percent: UInt64) -> Bool {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            return rng % 100 < percent
        }
        func space() {
            switch style {
            case .spaced: out.append(0x20)
            case .random: while chance(40) { out.append(rng & 8 == 0 ? 0x20 : 0x09) }
            case .compact: break
            }
        }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var inString = false
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if inString {
                if b == 0x5C, i + 1 < bytes.count { // an escape stays as it is
                    out.append(b); out.append(bytes[i + 1]); i += 2; continue
                }
                if b == 0x22 { inString = false; out.append(b); i += 1; continue }
                let letter = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                if letter, style == .random, chance(30) {
                    out += [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]]
                } else {
                    out.append(b)
                }
                i += 1
                continue
            }
            switch b {
            case 0x22: inString = true; out.append(b)
            case 0x3A, 0x2C: if style == .random { space() }; out.append(b); space()
            case 0x7B, 0x5B: out.append(b); space()
            case 0x7D, 0x5D: space(); out.append(b)
            case 0x20, 0x0A, 0x09, 0x0D: break // the source's own whitespace gives way to ours
            default: out.append(b)
            }
            i += 1
        }
        return out
    }
}
