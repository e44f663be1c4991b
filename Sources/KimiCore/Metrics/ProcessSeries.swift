/// Gauges that belong to a process: requests in flight and
/// worker threads. A machine-wide word that each process adds to would keep
/// a killed process's share forever (its in-flight requests never end), so
/// each process adds to words of its own, under a slot it claims in the
/// shared table (`proc:<slot>` holds its pid), and `/metrics` sums the
/// slots of processes that are alive. A slot of a dead process is claimed
/// again by the next process that starts, its words zeroed first.
public enum ProcessSeries {
    /// Slots per table (a machine runs at most 64 workers under --workers).
    public static let maxProcesses = 64
    /// The families kept per process.
    public static let gauges = ["in_flight_requests", "worker_threads"]

    /// The series whose word is the slot's owner (a pid; 0 = free).
    public static func owner(_ slot: Int) -> String { "proc:" + String(slot) }

    /// The series of one process's gauge.
    public static func gauge(_ slot: Int, _ name: String) -> String { "proc:" + String(slot) + ":" + name }

    /// `stored` with the per-process words replaced by each gauge's sum over
    /// the live owners (`isLive(pid)`), as the family's one series.
    public static func fold(_ stored: [(text: String, value: UInt64)], isLive: (Int32) -> Bool) -> [(text: String, value: UInt64)] {
        var out: [(text: String, value: UInt64)] = []
        var owners: [Int: UInt64] = [:]
        var words: [(slot: Int, name: String, value: UInt64)] = []
        for s in stored {
            guard s.text.hasPrefix("proc:") else { out.append(s); continue }
            let parts = s.text.utf8.dropFirst(5).split(separator: 0x3A, maxSplits: 1)
            guard let slot = parts.first.flatMap({ Int(String(decoding: $0, as: UTF8.self)) }) else { continue }
            if parts.count == 1 { owners[slot] = s.value } else { words.append((slot, String(decoding: parts[1], as: UTF8.self), s.value)) }
        }
        let live = Set(owners.filter { $0.value != 0 && $0.value <= UInt64(Int32.max) && isLive(Int32($0.value)) }.keys)
        var sums = Dictionary(uniqueKeysWithValues: gauges.map { ($0, Int64(0)) })
        for w in words where live.contains(w.slot) && sums[w.name] != nil {
            sums[w.name]! &+= Int64(bitPattern: w.value)
        }
        for name in gauges { out.append((PrometheusText.prefix + name, UInt64(bitPattern: sums[name]!))) }
        return out
    }
}
