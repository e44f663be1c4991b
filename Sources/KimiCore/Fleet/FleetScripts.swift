/// The Lua scripts the fleet's Redis runs, each one atomic and
/// one round trip (`EVALSHA`), on Redis's own clock (`TIME`: machines whose
/// clocks differ by milliseconds still share one exact GCRA). Every word is
/// a TAT or key-health word as in the machine's file table, stored as a
/// decimal integer under `redis.prefix` + the 64-bit slot key in hex, with
/// a TTL: a GCRA word expires when its TAT has passed (it then means what
/// a missing word means, a full quota), so nothing grows without bound.
///
/// Arithmetic: Lua 5.1's numbers are doubles, exact below 2^53; TATs are
/// µs since the epoch (~2^51) and every cost and window is computed by the
/// gateway (`GCRA`, `TokenGCRA`) and passed in, so the scripts only add,
/// compare and clamp. The gateway then runs the same Swift decision on the
/// stored word and Redis's `now` that the script returns, so headers and
/// Retry-After are computed exactly as on the file.
public enum FleetScripts {
    /// Both GCRA scripts' start: Redis's `now`, the window (ARGV[2]), the
    /// stored word and the TAT clamped into [now, now + W] (`GCRA.decide`).
    static let clampedTAT = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local window = tonumber(ARGV[2])
    local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
    local tat = stored
    if tat < now then tat = now end
    if tat > now + window then tat = now + window end
    """

    /// A GCRA admission (requests: cost T = W / L; tokens: ⌈c·W / L⌉):
    /// TAT' = clamp(TAT, now, now + W) + cost, admitted when TAT' − W ≤ now
    /// (for requests the same as TAT − τ ≤ now, τ = W − T).
    /// KEYS[1] the word, ARGV[1] cost µs, ARGV[2] W µs → {admitted, stored, now}.
    public static let step = """
    \(clampedTAT)
    local new = tat + tonumber(ARGV[1])
    if new - window <= now then
      redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
      return {1, stored, now}
    end
    return {0, stored, now}
    """

    /// A token reservation settled (`TokenGCRA.settle`): ARGV[1] the signed
    /// span of used − reserved tokens in µs, ARGV[2] W µs → the new TAT.
    public static let settle = """
    \(clampedTAT)
    local new
    local delta = tonumber(ARGV[1])
    if delta >= 0 then new = math.min(tat + delta, now + window) else new = math.max(tat + delta, now) end
    if new <= now then redis.call('DEL', KEYS[1]) else
      redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
    end
    return new
    """

    /// Compare-and-set of any word (key health): ARGV[1] expected, ARGV[2]
    /// desired (0 deletes: a missing word is 0), ARGV[3] TTL ms →
    /// {1, desired} or {0, current}.
    public static let compareAndSet = """
    local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
    if cur ~= tonumber(ARGV[1]) then return {0, cur} end
    if tonumber(ARGV[2]) == 0 then redis.call('DEL', KEYS[1]) else
      redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
    end
    return {1, tonumber(ARGV[2])}
    """

    /// A key's usage added to its day and month (budgets, fleet-wide):
    /// KEYS[1] the day's hash, KEYS[2] the month's; ARGV requests, prompt
    /// and completion tokens, cost (millionths), then each period's end
    /// (ms) + a day, when its hash expires.
    public static let usageAdd = """
    for i = 1, 2 do
      redis.call('HINCRBY', KEYS[i], 'r', ARGV[1])
      redis.call('HINCRBY', KEYS[i], 'p', ARGV[2])
      redis.call('HINCRBY', KEYS[i], 'c', ARGV[3])
      redis.call('HINCRBY', KEYS[i], 'm', ARGV[4])
      redis.call('PEXPIREAT', KEYS[i], ARGV[4 + i])
    end
    return 1
    """

    /// Both periods' usage: {r, p, c, m} of the day, then of the month.
    public static let usageRead = """
    local out = {}
    for i = 1, 2 do
      local v = redis.call('HMGET', KEYS[i], 'r', 'p', 'c', 'm')
      for j = 1, 4 do out[#out + 1] = tonumber(v[j] or '0') or 0 end
    end
    return out
    """

    /// Client keys created at run time, shared by the fleet:
    /// KEYS[1] the entries (id → JSON), KEYS[2] their versions (id →
    /// number), KEYS[3] the generation. ARGV: id, version, JSON, repeated.
    /// An entry replaces the stored one only when its version is larger, or
    /// the same with a larger JSON text (`KeyStore.Entry.wins`): so
    /// machines publishing at once, or an old one coming back, never undo a
    /// newer change. The generation moves when anything changed; returns it.
    public static let keyPut = """
    local changed = false
    for i = 1, #ARGV, 3 do
      local cur = redis.call('HGET', KEYS[2], ARGV[i])
      local take = not cur
      if cur then
        local v, c = tonumber(ARGV[i + 1]), tonumber(cur)
        if v > c then take = true
        elseif v == c then
          local j = redis.call('HGET', KEYS[1], ARGV[i])
          take = (not j) or ARGV[i + 2] > j
        end
      end
      if take then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
        redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
        changed = true
      end
    end
    if changed then return redis.call('INCR', KEYS[3]) end
    return tonumber(redis.call('GET', KEYS[3]) or '0')
    """

    public static let all = [step, settle, compareAndSet, usageAdd, usageRead, keyPut]
}
