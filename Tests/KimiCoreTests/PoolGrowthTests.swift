import Testing
@testable import KimiCore

@Suite struct PoolGrowthTests {
    func grow(idle: Int = 0, threads: Int, max: Int = 256, quietFor: UInt64 = 3_000_000) -> Int {
        PoolGrowth.threadsToStart(idle: idle, threads: threads, maxThreads: max, nanosSinceLastAcceptEntry: quietFor)
    }

    @Test func aThreadWaitingInAcceptMeansNoGrowth() {
        #expect(grow(idle: 1, threads: 8) == 0)
    }

    @Test func aThreadBackInAcceptWithinTheQuietIntervalMeansNoGrowth() {
        // Short requests: every thread busy for a moment, but one went back to accept() 1 ms ago.
        #expect(grow(threads: 8, quietFor: 1_000_000) == 0)
        #expect(grow(threads: 8, quietFor: PoolGrowth.quietNanos) == 0)
    }

    @Test func saturatedPoolsGrowByAQuarterAtLeastOne() {
        #expect(grow(threads: 1) == 1)
        #expect(grow(threads: 3) == 1)
        #expect(grow(threads: 8) == 2)
        #expect(grow(threads: 60) == 15)
    }

    @Test func aLargePoolGrowsByAFixedStepNotInProportion() {
        #expect(grow(threads: 100) == PoolGrowth.maxStep)
        #expect(grow(threads: 3_000, max: 4_096) == PoolGrowth.maxStep)
    }

    @Test func growthStopsAtTheMaximumPlusTheReserveThread() {
        #expect(grow(threads: 250, max: 256) == 7) // 16 wanted, 7 places left (256 + 1 reserve)
        #expect(grow(threads: 257, max: 256) == 0)
        #expect(grow(threads: 300, max: 256) == 0) // never negative
    }
}

@Suite struct PoolManagerRhythmTests {
    @Test func theManagerTicksWhileNoThreadWaitsInAccept() {
        var r = PoolManagerRhythm()
        for _ in 0..<(PoolManagerRhythm.quietTicks * 3) { #expect(r.next(idle: 0) == .tick) }
    }

    @Test func aSecondOfTicksWithAThreadInAcceptPutsTheManagerToSleep() {
        var r = PoolManagerRhythm()
        for _ in 0..<(PoolManagerRhythm.quietTicks - 1) { #expect(r.next(idle: 2) == .tick) }
        #expect(r.next(idle: 2) == .sleep)
        // A sleep that ran out (its once-a-second work) with threads still in accept(): sleep again.
        #expect(r.next(idle: 1) == .sleep)
    }

    @Test func oneTickWithEveryThreadBusyStartsTheQuietSecondAgain() {
        var r = PoolManagerRhythm()
        for _ in 0..<(PoolManagerRhythm.quietTicks - 1) { _ = r.next(idle: 2) }
        #expect(r.next(idle: 0) == .tick)
        for _ in 0..<(PoolManagerRhythm.quietTicks - 1) { #expect(r.next(idle: 2) == .tick) }
        #expect(r.next(idle: 2) == .sleep)
    }

    @Test func beingWokenMeansTickingUntilTheNextQuietSecond() {
        var r = PoolManagerRhythm()
        for _ in 0..<PoolManagerRhythm.quietTicks { _ = r.next(idle: 1) }
        r.woken()
        #expect(r.quiet == 0)
        #expect(r.next(idle: 1) == .tick)
    }
}
