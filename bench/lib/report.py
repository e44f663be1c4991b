"""The report: bench/results/latest.md, latest.json and a PNG chart."""
from __future__ import annotations

import json

from .measure import ROOT, log

RESULTS = ROOT / "bench" / "results"


def verdict(value: float, target: str) -> str:
    op, num = target.split()
    ok = {"<=": value <= float(num), ">=": value >= float(num), "==": value == float(num)}[op]
    return "met" if ok else "MISSED"


def many_streams_rows(m: dict | None, f) -> list[str]:
    """Scenario 8's rows (absent when it did not run)."""
    if not m:
        return []
    secs = m["events_per_stream"] * m["interval_ms"] / 1000
    return [
        f"| 8 | {m['streams']:,} concurrent streams ({m['events_per_stream']} events, {m['interval_ms']} ms apart: {f(secs, 0)} s each) complete with every event | {m['complete']:,} / {m['streams']:,}; {m['events']:,} / {m['events_expected']:,} events ({m['errors']} errors) | | | all | {verdict(m['complete'], '>= ' + str(m['streams']))}, {verdict(m['events'], '>= ' + str(m['events_expected']))} |",
        f"| 8 | the same: peak RSS of {m['processes']} gateway processes | {f(m['peak_rss_mb'], 0)} MB ({m['peak_threads']:,} threads, at most {m['peak_threads_one_process']:,} in one process) | {f(m['rss_before_mb'], 0)} MB idle | | ≤ 1,536 MB | {verdict(m['peak_rss_mb'], '<= 1536')} |",
        f"| 8 | the same: GET /health while all are open, p50 / p99 ms | {f(m['health_p50_ms'])} / {f(m['health_p99_ms'])} through nginx ({m['health_samples']} probes) | {f(m['health_direct_p50_ms'])} / {f(m['health_direct_p99_ms'])} on the gateway's FastCGI socket | | p99 ≤ 50 ms | {verdict(m['health_p99_ms'] or 1e9, '<= 50')} |",
        *([f"| 8 | the same streams through nginx alone (proxy_pass; /health answered by nginx), p50 / p99 ms | {f(m['health_p50_ms'])} / {f(m['health_p99_ms'])} through the gateway (above) | {f(na['health_p50_ms'])} / {f(na['health_p99_ms'])} ({na['health_samples']} probes; {na['complete']:,} streams complete) | p99 {f(m['health_p99_ms'] / na['health_p99_ms'])}× | reported | — |"]
          if (na := m.get("nginx_alone")) and na.get("health_p99_ms") and m.get("health_p99_ms") else []),
        f"| 8 | the same: gateway CPU per relayed event | {f(m['gateway_cpu_us_per_event'], 2)} µs | {f(m['gateway_cpu_s'], 1)} s over the run | | ≤ 2 µs | {verdict(m['gateway_cpu_us_per_event'], '<= 2')} |",
    ]


def write_report(r: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(r, indent=2))
    h, c, st, cs, lim, leak = r["health"], r["completion"], r["stream"], r["concurrent"], r["limiter"], r["leak"]
    acc, kp, mt, cost, ev = r["accounting"], r["key_pool"], r["metrics"], r["cost"], r["events"]
    ot = r["otel"]
    cg, cp = cost["gateway"], cost["proxy"]
    ctl = r["control"]
    tl = r["tail"]
    f = lambda v, d=2: f"{v:,.{d}f}"  # noqa: E731
    lines = [
        "# kimi-gateway benchmark report", "",
        f"Run {r['when']} on {r['machine']} — load generator, nginx, gateway and simulator on the same machine.",
        "Every ratio compares two figures measured side by side in this run; absolute numbers drift on shared machines.",
        "Reproduce: `make bench` (writes this file, `latest.json` and `latest.png`).", "",
        "| # | scenario | gateway | baseline | ratio | target | verdict |", "|---|---|---|---|---|---|---|",
        f"| 1 | GET /health req/s (wrk -c32) | {f(h['gateway']['rps'], 0)} | {f(h['baseline']['rps'], 0)} (C libfcgi) | {f(h['rps_ratio'])} | ≥ 0.9 | {verdict(h['rps_ratio'], '>= 0.9')} |",
        f"| 1 | GET /health p99 ms | {f(h['gateway']['p99_ms'])} | {f(h['baseline']['p99_ms'])} | {f(h['p99_ratio'])} | ≤ 1.5 | {verdict(h['p99_ratio'], '<= 1.5')} |",
        f"| 2 | POST /v1/chat/completions req/s | {f(c['gateway']['rps'], 0)} | {f(c['baseline']['rps'], 0)} (nginx proxy_pass) | {f(c['rps_ratio'])} | ≥ 0.5 | {verdict(c['rps_ratio'], '>= 0.5')} |",
        f"| 2 | POST /v1/chat/completions p99 ms | {f(c['gateway']['p99_ms'])} | {f(c['baseline']['p99_ms'])} | {f(c['p99_ratio'])} | ≤ 2 | {verdict(c['p99_ratio'], '<= 2')} |",
        f"| 2e | gateway CPU µs per relayed completion (user + sys) | {f(cost['gateway_cpu_us'], 1)} ({f(cg['gateway_user_us'], 1)} + {f(cg['gateway_sys_us'], 1)}) | | | ≤ 60 µs | {verdict(cost['gateway_cpu_us'], '<= 60')} |",
        f"| 2e | nginx CPU µs per request, gateway path vs proxy_pass | {f(cg['nginx_us'], 1)} | {f(cp['nginx_us'], 1)} (proxy_pass) | {f(cost['nginx_cpu_ratio'])} | ≤ 1.5 | {verdict(cost['nginx_cpu_ratio'], '<= 1.5')} |",
        f"| 2e | context switches per completion, voluntary + involuntary | gateway {f(cg['gateway_vcsw'], 2)} + {f(cg['gateway_ivcsw'], 2)}; nginx {f(cg['nginx_vcsw'], 2)} + {f(cg['nginx_ivcsw'], 2)} | nginx {f(cp['nginx_vcsw'], 2)} + {f(cp['nginx_ivcsw'], 2)} (proxy_pass) | | reported | |",
        f"| 2e | latency at concurrency 1, p50 µs | {f(cg['c1_p50_ms'] * 1000, 0)} | {f(cp['c1_p50_ms'] * 1000, 0)} (proxy_pass) | {cost['added_p50_us']:+,.0f} µs | ≤ +100 µs | {verdict(cost['added_p50_us'], '<= 100')} |",
        f"| 2e | latency at concurrency 1, p99 µs | {f(cg['c1_p99_ms'] * 1000, 0)} | {f(cp['c1_p99_ms'] * 1000, 0)} (proxy_pass) | {cost['added_p99_us']:+,.0f} µs | ≤ +150 µs | {verdict(cost['added_p99_us'], '<= 150')} |",
        f"| 2a | A/A control: the same completion, same config in both pools, req/s | {f(ctl['on']['rps'], 0)} | {f(ctl['off']['rps'], 0)} | {f(ctl['rps_ratio'])} | 1.00 ± what this machine moves | rounds {f(ctl['pair_spread'][0])}–{f(ctl['pair_spread'][1])}; mean {f(ctl['rps_ratio_mean'])} ± {f(ctl['rps_ratio_se'], 3)} |",
        f"| 2b | same, usage ledger + token limit on vs off, req/s | {f(acc['on']['rps'], 0)} | {f(acc['off']['rps'], 0)} (both off) | {f(acc['rps_ratio'])} | ≥ 0.95 | {verdict(acc['rps_ratio'], '>= 0.95')} |",
        f"| 2b | same, p99 ms | {f(acc['on']['p99_ms'])} | {f(acc['off']['p99_ms'])} | {f(acc['p99_ratio'])} | reported | — |",
        f"| 2b | same, gateway CPU µs per request | {f(acc['on']['cpu_us_per_request'], 1)} | {f(acc['off']['cpu_us_per_request'], 1)} | {acc['cpu_added_us_per_request']:+,.1f} µs | reported | — |",
        f"| 2c | same, a pool of 3 upstream keys vs one key, req/s | {f(kp['on']['rps'], 0)} | {f(kp['off']['rps'], 0)} (one key) | {f(kp['rps_ratio'])} | ≥ 0.97 | {verdict(kp['rps_ratio'], '>= 0.97')} |",
        f"| 2c | same, gateway CPU µs per request | {f(kp['on']['cpu_us_per_request'], 1)} | {f(kp['off']['cpu_us_per_request'], 1)} | {kp['cpu_added_us_per_request']:+,.1f} µs | reported | — |",
        f"| 2d | GET /health, metrics on vs off (two gateway pools, alternating), req/s | {f(mt['health']['on']['rps'], 0)} | {f(mt['health']['off']['rps'], 0)} (metrics off) | {f(mt['health']['rps_ratio'])} | ≥ 0.97 | {verdict(mt['health']['rps_ratio'], '>= 0.97')} |",
        f"| 2d | POST /v1/chat/completions, metrics on vs off (two gateway pools, alternating), req/s | {f(mt['completion']['on']['rps'], 0)} | {f(mt['completion']['off']['rps'], 0)} (metrics off) | {f(mt['completion']['rps_ratio'])} | ≥ 0.97 | {verdict(mt['completion']['rps_ratio'], '>= 0.97')} |",
        f"| 2d | the same rounds: mean ratio ± standard error (/health; completion) | | | {f(mt['health']['rps_ratio_mean'])} ± {f(mt['health']['rps_ratio_se'], 3)}; {f(mt['completion']['rps_ratio_mean'])} ± {f(mt['completion']['rps_ratio_se'], 3)} | reported | rounds {f(mt['health']['pair_spread'][0])}–{f(mt['health']['pair_spread'][1])}; {f(mt['completion']['pair_spread'][0])}–{f(mt['completion']['pair_spread'][1])} |",
        f"| 2d | same, gateway CPU µs per request (/health; completion) | {f(mt['health']['on']['cpu_us_per_request'], 1)}; {f(mt['completion']['on']['cpu_us_per_request'], 1)} | {f(mt['health']['off']['cpu_us_per_request'], 1)}; {f(mt['completion']['off']['cpu_us_per_request'], 1)} | {mt['health']['cpu_added_us_per_request']:+,.1f}; {mt['completion']['cpu_added_us_per_request']:+,.1f} µs | reported | — |",
        f"| 2f | POST /v1/chat/completions, OTLP trace export on (every request sampled) vs off, req/s | {f(ot['on']['rps'], 0)} | {f(ot['off']['rps'], 0)} (export off) | {f(ot['rps_ratio'])} | ≥ 0.97 | {verdict(ot['rps_ratio'], '>= 0.97')} |",
        f"| 2f | same, mean ratio ± standard error; gateway CPU µs per request on; off | {f(ot['on']['cpu_us_per_request'], 1)}; {f(ot['off']['cpu_us_per_request'], 1)} | | {f(ot['rps_ratio_mean'])} ± {f(ot['rps_ratio_se'], 3)}; {ot['cpu_added_us_per_request']:+,.1f} µs | reported | {ot['exports']:,} exports |",
        f"| 7 | completion at saturation (wrk -c32), p50 / p90 / p99 ms | {f(tl['gateway']['p50_ms'])} / {f(tl['gateway']['p90_ms'])} / {f(tl['gateway']['p99_ms'])} (defaults, ledger on) | {f(tl['floor']['p50_ms'])} / {f(tl['floor']['p90_ms'])} / {f(tl['floor']['p99_ms'])} (libfcgi floor) | p90 {f(tl['p90_vs_floor'])}×, p99 {f(tl['p99_vs_floor'])}× | p90 ≤ 1.5×, p99 ≤ 2× | {verdict(tl['p90_vs_floor'], '<= 1.5')}, {verdict(tl['p99_vs_floor'], '<= 2')} |",
        f"| 7 | same, req/s | {f(tl['gateway']['rps'], 0)} | {f(tl['floor']['rps'], 0)} (floor) | {f(tl['gateway']['rps'] / tl['floor']['rps'])} | reported | — |",
        f"| 7 | gateway CPU µs per completion (wrk -c32) beside the floor's | {f(tl['cpu_us']['gateway'], 1)} | {f(tl['cpu_us']['floor'], 1)} (libfcgi floor) | +{f(tl['cpu_above_floor_us'], 1)} µs | ≤ floor + 25 µs | {verdict(tl['cpu_above_floor_us'], '<= 25')} |",
        f"| 7 | latency at one connection, p50 / p99 µs | {f(tl['c1']['gateway']['p50_ms'] * 1000, 0)} / {f(tl['c1']['gateway']['p99_ms'] * 1000, 0)} | {f(tl['c1']['floor']['p50_ms'] * 1000, 0)} / {f(tl['c1']['floor']['p99_ms'] * 1000, 0)} (floor) | p50 {tl['c1_p50_above_floor_us']:+,.0f} µs, p99 {f(tl['c1_p99_vs_floor'])}× | p50 ≤ floor + 40 µs, p99 ≤ 2× | {verdict(tl['c1_p50_above_floor_us'], '<= 40')}, {verdict(tl['c1_p99_vs_floor'], '<= 2')} |",
        f"| 7 | same, ledger on vs off ({len(tl['p99_ledger_rounds'])} alternating rounds), p50 / p90 / p99 ms | {f(tl['gateway_ledger_phase']['p50_ms'])} / {f(tl['gateway_ledger_phase']['p90_ms'])} / {f(tl['gateway_ledger_phase']['p99_ms'])} | {f(tl['ledger_off']['p50_ms'])} / {f(tl['ledger_off']['p90_ms'])} / {f(tl['ledger_off']['p99_ms'])} (ledger off) | p99 {f(tl['p99_ledger_on_vs_off'])}× (the sides' medians; rounds {f(min(tl['p99_ledger_rounds']))}–{f(max(tl['p99_ledger_rounds']))}) | p99 ≤ 1.2× | {verdict(tl['p99_ledger_on_vs_off'], '<= 1.2')} |",
        f"| 7 | same, A/A control: ledger on in both pools ({len(tl['p99_aa_rounds'])} rounds), p99 ms | {f(tl['gateway_aa_phase']['p99_ms'])} | {f(tl['aa']['p99_ms'])} (the twin) | p99 {f(tl['p99_aa'])}× (rounds {f(min(tl['p99_aa_rounds']))}–{f(max(tl['p99_aa_rounds']))}) | the method's resolution | — |",
        f"| 3 | 200-chunk stream, median TTFB ms | {f(st['gateway_ttfb_ms'])} | {f(st['direct_ttfb_ms'])} (simulator direct) | {st['ttfb_added_ms']:+,.2f} ms | ≤ +1 ms | {verdict(st['ttfb_added_ms'], '<= 1')} |",
        f"| 3 | 200-chunk stream, median total ms | {f(st['gateway_total_ms'], 1)} | {f(st['direct_total_ms'], 1)} | {st['total_added_pct']:+,.1f} % | ≤ +10 % | {verdict(st['total_added_pct'], '<= 10')} |",
        f"| 3b | gateway CPU per relayed SSE event ({ev['streams']} streams of {ev['events']:,} events vs of 1) | {f(ev['gateway_us_per_event'], 1)} µs | simulator writing it {f(ev['simulator_us_per_event'], 1)} µs; nginx relaying it {f(ev['nginx_us_per_event'], 1)} µs | {f(ev['gateway_us_per_event'] / ev['simulator_us_per_event'])}× the simulator | ≤ 2 µs (issue #15) | {verdict(ev['gateway_us_per_event'], '<= 2')} |",
        f"| 4 | {cs['streams']:,} streams (50 chunks, 20 ms apart) complete | {cs['complete']} / {cs['streams']} ({cs['errors']} errors) | | | all, no errors | {verdict(cs['complete'], '>= ' + str(cs['streams']))} |",
        f"| 4 | the same: most open at once (gateway threads at the peak) | {cs['peak_threads']} | wall {f(cs['wall_s'], 1)} s | | reported | — |",
        f"| 4 | peak RSS of {cs['processes']} gateway processes | {f(cs['peak_rss_mb'], 1)} MB ({cs['peak_threads']} threads) | {f(cs['rss_before_mb'], 1)} MB idle | | ≤ 200 MB (issue #15) | {verdict(cs['peak_rss_mb'], '<= 200')} |",
        f"| 4 | gateway CPU s per 1,000 chunks | {f(cs['gateway_cpu_s_per_1000_chunks'], 4)} | simulator {f(cs['simulator_cpu_s'], 2)} s total | | reported | — |",
        *many_streams_rows(r.get("many_streams"), f),
        f"| 5 | rate-limit check, 4 processes contending | {f(lim['4_process']['nsPerCheck'], 0)} ns | {f(lim['1_process']['nsPerCheck'], 0)} ns (1 process) | {f(lim['4_process']['nsPerCheck'] / lim['1_process']['nsPerCheck'])} | ≤ 2,000 ns | {verdict(lim['ns_per_check_4_processes'], '<= 2000')} |",
        f"| 5 | the same check on Redis (loopback, one EVALSHA), 4 processes | {f(lim['redis_4_process']['nsPerCheck'] / 1000, 1)} µs | {f(lim['redis_1_process']['nsPerCheck'] / 1000, 1)} µs (1 process); PING round trip {f(lim['redis_ping_us'], 1)} µs | {f(lim['redis_4_process']['nsPerCheck'] / lim['4_process']['nsPerCheck'], 0)}× the file | reported | — |",
        f"| 6 | RSS growth 10k → 200k requests | {f(leak['rss_growth_mb'])} MB | {f(leak['after_10k']['rss_kb'] / 1024, 1)} MB at 10k | | ≤ 5 MB | {verdict(leak['rss_growth_mb'], '<= 5')} |",
        f"| 6 | open fds (not sockets) 10k → 200k | {leak['after_200k']['other_fds']} | {leak['after_10k']['other_fds']} at 10k | Δ {leak['other_fd_delta']} | equal | {verdict(leak['other_fd_delta'], '== 0')} |",
        f"| 6 | sockets 10k → 200k (threads {leak['after_10k']['threads']} → {leak['after_200k']['threads']}) | {leak['after_200k']['sockets']} | {leak['after_10k']['sockets']} at 10k | ≤ 4 per thread + 1 | bounded | {'met' if leak['sockets_within_bound'] else 'MISSED'} |",
        "",
        "Notes:",
        "- Scenarios 1, 2 and 6 run the gateway as 2 processes (`spawn-fcgi -F 2`), the C baseline as 2 processes; nginx has 2 workers and no access log.",
        "- Scenario 2's upstream is nginx answering a fixed completion (`return 200`); the rate limiter is on (with a limit never reached), as in production.",
        f"- Scenarios 2a-2d and 2f run two gateway pools (the stack's and a twin: 2 processes each, same binary, same limiter table and database, each behind its own nginx server with the site's FastCGI settings) in {len(ctl['pairs'])} rounds ({len(mt['completion']['pairs'])} for 2d and 2f) of back-to-back 1-second wrk runs, one per pool, the order flipping each round; the feature is on in one pool and off in the other, the pools swapping roles halfway, and the verdict is the median of the rounds' ratios (every round is in latest.json). No reload between the runs of a round, so rounds are short and many: identical pools moved ±9 % a round here whatever the run's length, so only the count of rounds narrows the median. 2a is the A/A control: the same config in both pools; its ratio's distance from 1 and its spread are the method's resolution in this run. CPU is each pool's user + system time over its own requests (the ledger's drain thread included).",
        f"- Scenario 2b wrote {acc['ledger_rows']:,} ledger rows while on, for the {acc['requests_while_on']:,} requests wrk counted in its measured runs (the warm-up runs of the pool that had the ledger write rows too; wrk does not count those cut at the end of a run). Scenario 2c's upstream accepts every key, so it measures the pick and the keys' shared health words, not failover.",
        "- Scenario 2e alternates the two paths 3 times (medians): CPU from /proc of the gateway's processes and nginx's workers around each 32-connection run, over wrk's requests; nginx also serves the fixed upstream in both paths. Then one connection each (wrk -c1) for the latency. Targets are issue #15's.",
        f"- Scenario 3 runs {st['runs']} streams each way, alternating; the direct path is the simulator behind the same nginx.",
        f"- Scenario 4 runs 4 gateway processes; the {cs['streams']:,} streams took {f(cs['wall_s'], 2)} s of wall time ({cs['chunks_per_stream']} chunks × 20 ms = 1 s minimum each).",
        f"- Scenario 7 puts the ledger-off gateway, then the libfcgi floor (bench/prototypes/threads_relay.c) in the twin pool's place behind the same nginx and runs {len(tl['runs']['ledger_off'])}, then {len(tl['runs']['floor'])} alternating rounds (after {len(tl['runs']['aa'])} with the ledger on in both pools, the A/A control) of 5-second wrk runs at 32 connections against each beside the gateway with its defaults (CPU from /proc of each pool around its runs), then {len(tl['runs']['floor'])} at one connection against the floor; each side is compared with the gateway's runs of the same rounds, figures are the medians of the rounds (one run's p99 moves a lot: see the A/A control's rounds). Every pool of scenario 7 runs as the systemd unit and `make run` run the gateway, one process forking its 2 workers in one session (the floor's `--workers 2` likewise); the kernel's autogroup was " + {True: "on", False: "off", None: "absent"}[tl.get("autogroup")] + " (with it on, a session per worker, as spawn-fcgi `-F` forks, made the gateway's p99 several times worse).",
        *([f"- Scenario 8 holds {r['many_streams']['streams']:,} streams open at once through 4 nginx workers and {r['many_streams']['processes']} gateway processes, from a C epoll upstream (bench/stream_upstream.c) to C epoll clients (bench/stream_clients.c) opening 1,000 a second; /health is probed every 20 ms while all are open; CPU per event is the gateway's whole CPU over the run (the streams' setup included) over the events the clients counted. Then the same streams run through nginx alone (proxy_pass to the same upstream, conf/nginx/bench-streams.conf.template) with /health answered by nginx itself: the floor for /health under this load, before any FastCGI."] if r.get("many_streams") else []),
        "- Scenario 5 hashes the client key and does the GCRA compare-and-swap on the shared file, on 64 hot keys.",
        "- Scenario 6: sockets rise and fall with nginx's cache of kept FastCGI connections; per gateway thread there are at most 4 (a kept FastCGI connection, an upstream connection, libcurl's wake-up socketpair). Every other descriptor must be equal.",
        "",
        "Raw figures: `bench/results/latest.json`. Chart: `bench/results/latest.png`.", "",
    ]
    (RESULTS / "latest.md").write_text("\n".join(lines))
    chart(r)


def chart(r: dict) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart")
        return
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    h, c = r["health"], r["completion"]
    ax[0].bar(["gateway\n/health", "C libfcgi\n/health", "gateway\n/v1 chat", "nginx\nproxy_pass"],
              [h["gateway"]["rps"], h["baseline"]["rps"], c["gateway"]["rps"], c["baseline"]["rps"]],
              color=["#3056d3", "#9aa5b8", "#3056d3", "#9aa5b8"])
    ax[0].set_title("requests / s (higher is better)")
    ax[1].bar(["gateway\n/health", "C libfcgi\n/health", "gateway\n/v1 chat", "nginx\nproxy_pass"],
              [h["gateway"]["p99_ms"], h["baseline"]["p99_ms"], c["gateway"]["p99_ms"], c["baseline"]["p99_ms"]],
              color=["#3056d3", "#9aa5b8", "#3056d3", "#9aa5b8"])
    ax[1].set_title("p99 latency ms (lower is better)")
    st = r["stream"]
    ax[2].bar(["direct\nTTFB", "gateway\nTTFB"], [st["direct_ttfb_ms"], st["gateway_ttfb_ms"]], color=["#9aa5b8", "#3056d3"])
    ax[2].set_title(f"200-chunk stream: TTFB ms\n(total +{st['total_added_pct']:.1f} % via gateway)")
    fig.suptitle(f"kimi-gateway benchmarks, {r['when']}")
    fig.tight_layout()
    fig.savefig(RESULTS / "latest.png", dpi=100)
