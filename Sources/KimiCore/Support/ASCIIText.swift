/// Short header values and keys built in one buffer: the text's bytes and
/// decimal numbers written through a pointer, one String at the end.
/// Swift's interpolation and `+` chains cost ~2,000–3,000 instructions per
/// 30-byte header item (callgrind: the token policy's two
/// `RateLimit` items were 11,000 instructions a request); this is a few
/// hundred.
public struct ASCIIText {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    private(set) var count = 0

    /// Builds a string of at most `capacity` bytes (what does not fit is
    /// cut, never written past the buffer).
    public static func build(capacity: Int, _ body: (inout ASCIIText) -> Void) -> String {
        String(unsafeUninitializedCapacity: capacity) { buf in
            var w = ASCIIText(base: buf.baseAddress!, capacity: capacity)
            body(&w)
            return w.count
        }
    }

    @inline(__always) public mutating func byte(_ b: UInt8) {
        guard count < capacity else { return }
        base[count] = b
        count += 1
    }

    public mutating func text(_ s: String) {
        var s = s
        s.withUTF8 { copy($0) }
    }

    private mutating func copy(_ bytes: UnsafeBufferPointer<UInt8>) {
        let n = min(bytes.count, capacity - count)
        guard n > 0, let from = bytes.baseAddress else { return }
        (base + count).update(from: from, count: n)
        count += n
    }

    /// Not generic: a generic version went unspecialized across modules
    /// and looked up type metadata on every call (callgrind).
    public mutating func number(_ v: Int) { number(Int64(v)) }

    public mutating func number(_ v: UInt64) {
        Self.decimal(v) { byte($0) }
    }

    /// `v`'s decimal digits, most significant first, without a String.
    @inline(__always) static func decimal(_ v: UInt64, _ emit: (UInt8) -> Void) {
        var m = v
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes ≥ 20 digits, on the stack
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = 0x30 + UInt8(m % 10)
                m /= 10
                n += 1
            } while m > 0
            while n > 0 {
                n -= 1
                emit(d[n])
            }
        }
    }

    public mutating func number(_ v: Int64) {
        if v < 0 { byte(0x2D) }
        number(v.magnitude)
    }
}

extension Array where Element == UInt8 {
    /// Appends the string's UTF-8 through its contiguous storage:
    /// `append(contentsOf: s.utf8)` took the generic sequence path, 7,100
    /// instructions of a relayed completion's response head and log line
    /// (callgrind).
    public mutating func appendUTF8(_ s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }

    /// Appends `v` in decimal without building a String.
    public mutating func appendDecimal(_ v: Int) {
        if v < 0 { append(0x2D) }
        ASCIIText.decimal(UInt64(v.magnitude)) { append($0) }
    }
}
