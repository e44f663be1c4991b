import Testing
@testable import KimiCore

/// Issue #14's pure parts: series text, the exposition, address ranges.
@Suite struct MetricsTextTests {
    @Test func seriesTextEscapesLabelValuesAndCarriesThePrefix() {
        #expect(PrometheusText.series("requests_total", [("route", "/v1/x"), ("status", "200")])
            == #"kimi_gateway_requests_total{route="/v1/x",status="200"}"#)
        #expect(PrometheusText.series("up") == "kimi_gateway_up")
        #expect(PrometheusText.escape("a\"b\\c\nd") == #"a\"b\\c\nd"#)
    }

    @Test func histogramsAreMadeCumulativeWithSumInSecondsAndCountEqualToInf() {
        let b = { (le: String, v: UInt64) in (text: #"kimi_gateway_request_duration_seconds_bucket{route="/h",le="\#(le)"}"#, value: v) }
        let text = PrometheusText.render([
            b("0.001", 3), b("0.1", 2), b("+Inf", 1),
            (text: #"kimi_gateway_request_duration_seconds_sum{route="/h"}"#, value: 2_500_000),
            (text: #"kimi_gateway_requests_total{route="/h",method="GET",status="200"}"#, value: 6),
            (text: "kimi_gateway_in_flight_requests", value: UInt64(bitPattern: -1)),
        ])
        #expect(text.contains("# TYPE kimi_gateway_request_duration_seconds histogram\n"))
        #expect(text.contains(#"kimi_gateway_request_duration_seconds_bucket{route="/h",le="0.001"} 3"#))
        #expect(text.contains(#"kimi_gateway_request_duration_seconds_bucket{route="/h",le="0.05"} 3"#))
        #expect(text.contains(#"kimi_gateway_request_duration_seconds_bucket{route="/h",le="0.1"} 5"#))
        #expect(text.contains(#"kimi_gateway_request_duration_seconds_bucket{route="/h",le="+Inf"} 6"#))
        #expect(text.contains(#"kimi_gateway_request_duration_seconds_sum{route="/h"} 2.5"#))
        #expect(text.contains(#"kimi_gateway_request_duration_seconds_count{route="/h"} 6"#))
        #expect(text.contains(#"kimi_gateway_requests_total{method="GET",route="/h",status="200"} 6"#) ||
                text.contains(#"kimi_gateway_requests_total{route="/h",method="GET",status="200"} 6"#))
        #expect(text.contains("kimi_gateway_in_flight_requests -1\n")) // a gauge is signed
        #expect(PrometheusText.bucket(0.0005) == "0.001" && PrometheusText.bucket(1) == "1" && PrometheusText.bucket(1e6) == "+Inf")
    }

    @Test func addressRangesMatchV4V6AndMappedAddresses() {
        let lo = CIDR("127.0.0.0/8")!
        #expect(lo.contains("127.0.0.1") && lo.contains("127.255.0.9") && !lo.contains("128.0.0.1"))
        #expect(lo.contains("::ffff:127.0.0.1"))
        #expect(CIDR("::1/128")!.contains("::1") && !CIDR("::1/128")!.contains("::2"))
        #expect(CIDR("10.1.2.3")!.contains("10.1.2.3") && !CIDR("10.1.2.3")!.contains("10.1.2.4"))
        #expect(CIDR("10.0.0.0/12")!.contains("10.15.255.255") && !CIDR("10.0.0.0/12")!.contains("10.16.0.0"))
        #expect(CIDR("nope") == nil && CIDR("10.0.0.0/33") == nil && !lo.contains("not an address"))
    }
}

@Suite struct ProcessSeriesTests {
    @Test func perProcessGaugesSumOverLiveOwnersOnly() {
        let stored: [(text: String, value: UInt64)] = [
            ("kimi_gateway_requests_total{route=\"/health\",method=\"GET\",status=\"200\"}", 9),
            (ProcessSeries.owner(0), 100), (ProcessSeries.gauge(0, "in_flight_requests"), 3), (ProcessSeries.gauge(0, "worker_threads"), 4),
            (ProcessSeries.owner(1), 200), (ProcessSeries.gauge(1, "in_flight_requests"), 5), (ProcessSeries.gauge(1, "worker_threads"), 6),
            // A slot whose owner died, and a process's gauge gone below zero for a moment.
            (ProcessSeries.owner(2), 300), (ProcessSeries.gauge(2, "in_flight_requests"), UInt64(bitPattern: -1)),
            (ProcessSeries.owner(3), 0), (ProcessSeries.gauge(3, "worker_threads"), 50),
        ]
        let folded = ProcessSeries.fold(stored, isLive: { $0 != 300 })
        let byText = Dictionary(folded.map { ($0.text, $0.value) }, uniquingKeysWith: +)
        #expect(byText["kimi_gateway_in_flight_requests"] == 8)
        #expect(byText["kimi_gateway_worker_threads"] == 10)
        #expect(byText["kimi_gateway_requests_total{route=\"/health\",method=\"GET\",status=\"200\"}"] == 9)
        #expect(!folded.contains { $0.text.hasPrefix("proc:") })
        let everyoneAlive = Dictionary(ProcessSeries.fold(stored, isLive: { _ in true }).map { ($0.text, $0.value) }, uniquingKeysWith: +)
        #expect(everyoneAlive["kimi_gateway_in_flight_requests"] == 7)
    }

    @Test func theGaugesAreThereBeforeAnyProcessCounted() {
        let folded = ProcessSeries.fold([], isLive: { _ in true })
        #expect(folded.map(\.text).sorted() == ["kimi_gateway_in_flight_requests", "kimi_gateway_worker_threads"])
        #expect(PrometheusText.render(folded).contains("kimi_gateway_worker_threads 0\n"))
    }
}
