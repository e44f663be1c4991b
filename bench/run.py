"""`make bench`: what the gateway costs, side by side with its baselines in
one run, on this machine (load generator included). Writes
bench/results/latest.md, latest.json and latest.png.

Scenarios (issue: benchmark suite):
  1. GET /health: gateway vs a minimal C libfcgi responder behind the same nginx
  2. POST /v1/chat/completions (non-stream) to a free upstream (nginx `return`):
     gateway vs nginx proxy_pass to that upstream
  2b. the same, usage ledger + token limit on vs off (issue #12: <= 5 % fewer req/s)
  2f. the same, OpenTelemetry trace export on (every request sampled) vs off
  3. a 200-chunk stream: gateway vs reading the simulator directly (TTFB, total)
  3b. CPU per relayed SSE event: gateway, nginx, and the simulator writing it
  4. 2,000 streams (50 chunks, 20 ms apart) started at once: completeness, RSS, CPU
  5. the shared rate limiter: cost of one check, 1 and 4 processes contending
  6. leak check: RSS and open fds after 10,000 vs 200,000 requests
  7. the tail at saturation: p50/p90/p99 at 32 connections, gateway (defaults)
     vs ledger off vs the libfcgi floor (bench/prototypes/threads_relay.c)
  8. 10,000 streams held open at once (60 s, an event every 500 ms) from a C
     epoll upstream to C epoll clients: completeness, RSS, /health's p99 while
     they run, CPU per relayed event

BENCH_QUICK=1 shortens every run (for work on the bench itself; its figures
are not the ones to publish). BENCH_WORKERS=N sets the gateway processes of
scenarios 1, 2 and 6 (1 for profiling a single worker under callgrind).
KIMI_TWIN_BIN=PATH runs the twin pool (scenario 2d's other side) on another
build or a wrapper script, for comparing two builds side by side (2d's own
figures then compare the builds too, so they are not the ones to publish).
"""
from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Always the release build: a newer debug build would otherwise be picked
# (measured: 2x the CPU per request).
os.environ.setdefault("KIMI_GATEWAY_BIN", str(ROOT / ".build" / "release" / "kimi-gateway"))

# bench/ is on the path as this script's folder; tools/ through PYTHONPATH (Makefile).
from lib import scenarios  # noqa: E402
from lib.measure import RUNS, BenchError  # noqa: E402
from lib.report import RESULTS, write_report  # noqa: E402
from lib.stacks import http_stack, kimistack, stop_baseline  # noqa: E402


def main() -> int:
    try:
        return run()
    except BenchError as e:
        print(f"make bench: {e}", file=sys.stderr)
        return 1


def run() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    r = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.release()}"}
    r["limiter"] = scenarios.scenario_limiter()
    s, ports = http_stack()
    try:
        r["health"] = scenarios.scenario_health(s, ports)
        r["completion"] = scenarios.scenario_completion(s, ports)
        r["cost"] = scenarios.scenario_cost(s, ports)
        r["control"] = scenarios.scenario_control(s, ports)
        r["accounting"] = scenarios.scenario_accounting(s, ports)
        r["key_pool"] = scenarios.scenario_key_pool(s, ports)
        r["metrics"] = scenarios.scenario_metrics(s, ports)
        r["otel"] = scenarios.scenario_otel(s, ports)
        r["tail"] = scenarios.scenario_tail(s, ports)
        r["leak"] = scenarios.scenario_leak(s)
    finally:
        stop_baseline(s)
        s.stop()
    cfg = {"server": {"minThreads": 8, "maxThreads": 600}, "rateLimit": {"enabled": False}}
    s = kimistack.Stack(RUNS / "streams", config=cfg, workers=4, nginx_workers=2, access_log=False)
    s.start()
    try:
        r["stream"] = scenarios.scenario_stream_overhead(s)
        r["events"] = scenarios.scenario_event_cost(s)
        r["concurrent"] = scenarios.scenario_concurrent_streams(s)
    finally:
        s.stop()
    r["many_streams"] = scenarios.scenario_many_streams()
    write_report(r)
    print((RESULTS / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
