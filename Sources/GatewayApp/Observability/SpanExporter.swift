import Glibc
import KimiCore
import Upstream

/// The process's OTLP/HTTP span exporter: requests hand their spans to a
/// bounded queue (`SpanQueue`) under a lock held for an append, and one
/// thread, started with the first span, sends them in batches with its own
/// libcurl handle and `otel.timeoutMs`. Nothing on the request path waits
/// for the collector; spans that do not fit, or whose export failed, are
/// counted in `/metrics` (`kimi_gateway_otel_spans_dropped_total`).
public final class SpanExporter: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue = SpanQueue<FinishedTrace>()
    private var started = false
    private var draining = false
    /// Spans taken for an export that has not ended (a drain waits for them).
    private var sending = 0
    private let configs: () -> GatewayConfig
    private let metrics: GatewayMetrics
    private let version: String
    /// When the export thread last logged a failure (at most one line in 10 s; the first at once).
    private var loggedFailureAt: UInt64?

    init(configs: @escaping () -> GatewayConfig, metrics: GatewayMetrics, version: String) {
        (self.configs, self.metrics, self.version) = (configs, metrics, version)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Queues a request's trace (never blocks on the collector; its spans
    /// are built on the exporter's thread).
    func submit(_ trace: FinishedTrace, config: GatewayConfig) {
        // Two numbers, not a copy of the whole `otel` section (its strings and lists retained and released).
        let (capacity, batchSize) = (config.otel.maxQueueSize, config.otel.maxExportBatchSize)
        let now = Clock.monotonicNanos()
        let (dropped, startThread) = locked { () -> (Int, Bool) in
            let d = queue.offer(trace, spans: trace.spanCount, capacity: capacity, now: now)
            let start = !started
            started = true
            if queue.batchReady(batchSize: batchSize) || start { pthread_cond_signal(cond) }
            return (d, start)
        }
        if startThread { Thread.detached(stackBytes: 256 << 10) { [self] in run() } }
        if dropped > 0 { metrics.add(config, "otel_spans_dropped_total", [("reason", "queue_full")], UInt64(dropped)) }
    }

    private func run() {
        let post = OTLPPost()
        while true {
            let config = configs()
            let o = config.otel
            var batch: [FinishedTrace] = []
            let stop = locked { () -> Bool in
                while true {
                    switch queue.next(now: Clock.monotonicNanos(), batchSize: o.maxExportBatchSize,
                                      delayNanos: UInt64(o.scheduleDelayMs) * 1_000_000, draining: draining) {
                    case let .send(items):
                        batch = items
                        sending = items.count
                        return false
                    case let .wait(until):
                        if draining { return true }
                        // Wake at the batch's deadline, or within a second to see a reload.
                        let cap = Clock.monotonicNanos() &+ 1_000_000_000
                        var ts = timespec()
                        let at = min(until ?? cap, cap)
                        ts.tv_sec = Int(at / 1_000_000_000)
                        ts.tv_nsec = Int(at % 1_000_000_000)
                        pthread_cond_timedwait(cond, mutex, &ts)
                        if until == nil, queue.isEmpty, !draining { continue }
                        if configs().otel != o { return false } // a reload: read it again
                    }
                }
            }
            if stop { return }
            guard !batch.isEmpty else { continue }
            export(batch, config: config, post: post)
            locked {
                sending = 0
                pthread_cond_broadcast(cond)
            }
        }
    }

    private func export(_ traces: [FinishedTrace], config: GatewayConfig, post: OTLPPost) {
        let o = config.otel
        let spans = traces.reduce(0) { $0 + $1.spanCount }
        guard o.enabled else {
            metrics.add(config, "otel_spans_dropped_total", [("reason", "export_failed")], UInt64(spans))
            return
        }
        var resource = o.resource
        if !resource.contains(where: { $0.key == "service.version" }) { resource.append(.string("service.version", version)) }
        resource += [.string("telemetry.sdk.name", "kimi-gateway"), .string("telemetry.sdk.language", "swift"),
                     .string("telemetry.sdk.version", version)]
        let scope = OTLPEncoding.Scope(name: "kimi-gateway", version: version)
        // Protobuf straight from the traces; JSON through `SpanData`.
        let body = o.protocolName == .protobuf
            ? OTLPEncoding.protobuf(resource: resource, scope: scope, capacity: 1024 + spans * 600) { sink in for t in traces { t.emit(into: &sink) } }
            : OTLPEncoding.json(traces.flatMap { $0.spans() }, resource: resource, scope: scope)
        let outcome = post.send(url: o.tracesURL, headers: ["Content-Type: " + o.protocolName.contentType] + o.parsedHeaders,
                                body: body, timeoutMs: o.timeoutMs)
        if case let .status(s) = outcome, (200..<300).contains(s) {
            metrics.add(config, "otel_spans_exported_total", [], UInt64(spans))
            return
        }
        metrics.add(config, "otel_spans_dropped_total", [("reason", "export_failed")], UInt64(spans))
        let now = Clock.monotonicNanos()
        if loggedFailureAt.map({ now &- $0 >= 10_000_000_000 }) ?? true {
            loggedFailureAt = now
            let why: String = switch outcome {
            case let .status(s): "HTTP \(s)"
            case let .failed(text): text
            }
            Log.error("otel: export of \(spans) span(s) to \(HeaderSafety.printable(o.tracesURL, max: 120)) failed (\(why)); they are dropped")
        }
    }

    /// At shutdown: sends what waits, for at most `timeoutMs`.
    public func drain(timeoutMs: Int) {
        let deadline = Clock.monotonicNanos() &+ UInt64(max(0, timeoutMs)) * 1_000_000
        locked {
            guard started else { return }
            draining = true
            pthread_cond_broadcast(cond)
            while (!queue.isEmpty || sending > 0), Clock.monotonicNanos() < deadline {
                var ts = timespec()
                let at = min(deadline, Clock.monotonicNanos() &+ 50_000_000)
                ts.tv_sec = Int(at / 1_000_000_000)
                ts.tv_nsec = Int(at % 1_000_000_000)
                pthread_cond_timedwait(cond, mutex, &ts)
            }
        }
    }
}
