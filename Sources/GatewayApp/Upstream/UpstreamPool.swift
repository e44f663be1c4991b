import Glibc
import KimiCore
import Upstream

/// The key pool's shared side: each key's `KeyHealth` word in
/// the limiter's memory-mapped table, so every process on the machine sees
/// a key cool down or go out as soon as one of them learns it. Lock-free:
/// reads are loads, changes are compare-and-swaps.
public final class UpstreamPool: @unchecked Sendable {
    private let limiter: MachineRateLimiter
    private let random = Locked<UInt64>(UInt64(truncatingIfNeeded: Clock.monotonicNanos()) | 1)
    /// One error line a minute per refused key.
    private let refusalLog = Locked<[UInt64: UInt64]>([:])

    init(limiter: MachineRateLimiter) { self.limiter = limiter }

    func nextRandom() -> UInt64 {
        random.update { x in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17 // xorshift64
            return x
        }
    }

    func word(_ key: UpstreamKey, config: GatewayConfig, now: Int64) -> Int64 {
        limiter.update(key: key.healthSlot, config: config, now: now) { w in (nil, w) }
    }

    /// The key for the next attempt; a half-open probe is claimed here (one
    /// request wins the CAS; the others pick again without that key).
    func pick(config: GatewayConfig, candidates: [Int], tried: [Int], now: Int64) -> KeyChoice.Pick {
        let keys = config.upstream.keys
        var excluded = Set(keys.indices).subtracting(candidates)
        // One key: nothing to weigh.
        let trouble = keys.count > 1 ? keys.map { limiter.update(key: $0.troubleSlot, config: config, now: now) { w in (nil, w) } } : []
        while true {
            let words = keys.map { word($0, config: config, now: now) }
            let pick = KeyChoice.pick(weights: keys.map(\.weight), words: words, tried: tried, trouble: trouble, excluded: excluded,
                                      now: now, random: nextRandom())
            guard case let .key(i, claim?) = pick else { return pick }
            let won = limiter.update(key: keys[i].healthSlot, config: config, now: now) { w in
                w == words[i] ? (claim, true) : (nil, false)
            }
            if won {
                Log.info("upstream key \(keys[i].name) (\(keys[i].fingerprint)): time is up, one request probes it")
                return pick
            }
            excluded.insert(i)
        }
    }

    /// Why every key is out (`KeyChoice.outage`).
    func outage(config: GatewayConfig, candidates: [Int], now: Int64) -> KeyChoice.Outage {
        KeyChoice.outage(words: candidates.map { word(config.upstream.keys[$0], config: config, now: now) }, now: now)
    }

    /// Records what an attempt taught about its key: its health, and its
    /// `KeyTrouble` (an overload, a 5xx or a timeout adds to it, success
    /// clears it; a pool of one has no other key to prefer: nothing is written).
    func learn(_ lesson: KeyHealth.Lesson, key: UpstreamKey, config: GatewayConfig, now: Int64) {
        if config.upstream.keys.count > 1 {
            switch lesson {
            case .inconclusive:
                limiter.update(key: key.troubleSlot, config: config, now: now) { w in (KeyTrouble.after(troubled: true, word: w, nowMs: now / 1000), ()) }
            case .worked:
                limiter.update(key: key.troubleSlot, config: config, now: now) { w in (w == 0 ? nil : 0, ()) }
            default: break
            }
        }
        let disabled = Int64(config.upstream.disabledKeySeconds) * 1_000_000
        let changed = limiter.update(key: key.healthSlot, config: config, now: now) { w -> (Int64?, Bool) in
            let next = KeyHealth.after(lesson, word: w, now: now, disabledMicros: disabled)
            return (next, next != nil && next != w)
        }
        guard changed else { return }
        switch lesson {
        case let .refused(reason):
            let mono = Clock.monotonicNanos()
            let due = refusalLog.update { seen -> Bool in
                if let last = seen[key.healthSlot], mono &- last < 60_000_000_000 { return false }
                seen[key.healthSlot] = mono
                return true
            }
            if due {
                Log.error("upstream key \(key.name) (\(key.fingerprint)) refused: \(reason.text); out for \(config.upstream.disabledKeySeconds) s, then one request probes it")
            }
        case .worked:
            Log.info("upstream key \(key.name) (\(key.fingerprint)) is healthy again")
        case .rateLimited, .inconclusive:
            break
        }
    }

    /// Every key and its health now, for `/health`.
    func snapshot(config: GatewayConfig, now: Int64) -> [(key: UpstreamKey, health: KeyHealth)] {
        config.upstream.keys.map { k in
            var h = KeyHealth(word: word(k, config: config, now: now))
            // A cool-down that ran out is health; a disabled key stays out until probed.
            if h.condition == .cooling, h.until <= now { h = KeyHealth() }
            return (k, h)
        }
    }
}
