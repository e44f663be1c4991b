/// A key's in-flight requests on the whole machine (`maxConcurrent`): one
/// shared word per key (the limiter's table, Redis in a fleet)
/// changed only by compare-and-swap, so the cap is exact across processes.
/// Pure: `MachineRateLimiter.update` applies these to the word.
public enum ConcurrencyCap {
    /// The key's word: by its id for a created key (a rotation keeps the
    /// count), else by its hash.
    public static func slotKey(keyID: String) -> UInt64 { RateLimiter.key(client: keyID, policy: "concurrent") }

    /// One more in flight when the count is below `cap`: the new word and
    /// whether it was admitted (nil: the word stays).
    public static func acquire(word: Int64, cap: Int) -> (Int64?, Bool) {
        let count = max(0, word)
        return count < Int64(cap) ? (count + 1, true) : (nil, false)
    }

    /// `n` fewer in flight, never below zero.
    public static func release(word: Int64, _ n: Int64 = 1) -> Int64? {
        let new = max(0, word - n)
        return new == word ? nil : new
    }
}
