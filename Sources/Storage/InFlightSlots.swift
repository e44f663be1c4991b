import Glibc
import KimiCore

/// The rows of a process's requests in flight, one fixed slot each in a
/// file mapped shared beside its journal (`journal-<pid>-<start>.inflight`):
/// a request writes its provisional row here at admission — before anything
/// goes upstream — and clears it when its final row is in the journal. So a
/// process killed mid-request (SIGKILL, the OOM killer, a drain cut short)
/// leaves every request it had sent upstream in one file or the other, and
/// the replay (`UsageJournal.replayLeftovers`) stores the final row when
/// there is one and the provisional row (outcome `interrupted`, its
/// reservation as the estimate) otherwise: one row per upstream request.
/// (52–91 of 300 requests had no row when only the end wrote one.)
///
/// A slot is `slotBytes` long: the line, then zeros; a slot whose line
/// has no newline (torn, or cleared) holds nothing. Slots come from a free
/// list under a lock (a copy of a line under it, as the journal's append);
/// the file starts at 1,024 slots and doubles while more requests are in
/// flight at once, up to `maxSlots`.
final class InFlightSlots: @unchecked Sendable {
    static let slotBytes = 1024
    static let initialSlots = 1024
    static let maxSlots = 1 << 17

    let path: String
    private let fd: Int32
    private var base: UnsafeMutableRawPointer
    private var slots: Int
    private var free: [Int]
    private let lock = Lock()

    init(path: String) throws {
        self.path = path
        slots = Self.initialSlots
        (fd, base) = try MappedJournalFile.create(path, bytes: slots * Self.slotBytes)
        free = Array((0..<slots).reversed())
    }

    deinit {
        munmap(base, slots * Self.slotBytes)
        close(fd)
    }

    /// Writes the line (ending in a newline) into a free slot; nil when it
    /// is longer than a slot or no slot can be had.
    func put(_ line: [UInt8]) -> Int? {
        guard line.count < Self.slotBytes, line.last == 0x0A else { return nil }
        return lock.withLock {
            if free.isEmpty {
                guard slots < Self.maxSlots, let m = MappedJournalFile.map(fd, slots * 2 * Self.slotBytes) else { return nil }
                munmap(base, slots * Self.slotBytes)
                base = m
                free = Array((slots..<slots * 2).reversed())
                slots *= 2
            }
            let i = free.removeLast()
            let slot = base + i * Self.slotBytes
            line.withUnsafeBytes { slot.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            return i
        }
    }

    /// Clears the slot (its final row is in the journal).
    func clear(_ i: Int) {
        lock.withLock {
            memset(base + i * Self.slotBytes, 0, Self.slotBytes)
            free.append(i)
        }
    }

    /// The provisional rows still in flight (a stop that cut requests short).
    func lines() -> [UInt8] {
        lock.withLock { Self.lines(UnsafeRawBufferPointer(start: base, count: slots * Self.slotBytes)) }
    }

    /// The complete lines in a slots file's bytes, one after another.
    static func lines(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i + slotBytes <= bytes.count {
            let slot = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + slotBytes)])
            if slot[0] != 0, let end = slot.firstIndex(of: 0x0A), !slot[..<end].contains(0) { out.append(contentsOf: slot[...end]) }
            i += slotBytes
        }
        return out
    }

    func remove() { unlink(path) }
}
