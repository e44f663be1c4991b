import FastCGI
import Glibc
import Testing

@Suite struct SchedulingPolicyTests {
    /// What `serve` relies on: the policy set on the thread that starts the
    /// others is theirs too (pthreads inherit it), and a thread that never
    /// set it (the test runner's) keeps the kernel's default.
    @Test func threadsStartedAfterBatchIsSetRunBatchAndOthersDoNot() {
        final class Seen: @unchecked Sendable { var setFailed: String? = "not run"; var setter = false; var child = false }
        let seen = Seen()
        let box = Unmanaged.passRetained(seen).toOpaque()
        var setter = pthread_t()
        pthread_create(&setter, nil, { arg in
            let seen = Unmanaged<Seen>.fromOpaque(arg!).takeRetainedValue()
            seen.setFailed = SchedulingPolicy.useBatch()
            seen.setter = SchedulingPolicy.isBatch
            var child = pthread_t()
            pthread_create(&child, nil, { arg in
                Unmanaged<Seen>.fromOpaque(arg!).takeUnretainedValue().child = SchedulingPolicy.isBatch
                return nil
            }, arg)
            pthread_join(child, nil)
            return nil
        }, box)
        pthread_join(setter, nil)
        #expect(seen.setFailed == nil)
        #expect(seen.setter)
        #expect(seen.child)
        #expect(!SchedulingPolicy.isBatch)
    }
}
