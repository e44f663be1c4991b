"""`make bench`: what the gateway costs, side by side with its baselines in
one run, on this machine (load generator included). Writes
bench/results/latest.md, latest.json and latest.png.

Scenarios (issue: benchmark suite):
  1. GET /health: gateway vs a minimal C libfcgi responder behind the same nginx
  2. POST /v1/chat/completions (non-stream) to a free upstream (nginx `return`):
     gateway vs nginx proxy_pass to that upstream
  3. a 200-chunk stream: gateway vs reading the simulator directly (TTFB, total)
  4. 1,000 concurrent streams (50 chunks, 20 ms apart): completeness, RSS, CPU
  5. the shared rate limiter: cost of one check, 1 and 4 processes contending
  6. leak check: RSS and open fds after 10,000 vs 200,000 requests
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import kimistack  # noqa: E402

# Always the release build: a newer debug build would otherwise be picked
# (measured: 2x the CPU per request).
os.environ.setdefault("KIMI_GATEWAY_BIN", str(ROOT / ".build" / "release" / "kimi-gateway"))

RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "run" / "bench"
QUICK = os.environ.get("BENCH_QUICK") == "1"  # shorter runs while developing the bench itself
WRK_SECONDS = 4 if QUICK else 10
COMPLETION = ('{"id":"chatcmpl-fixed","object":"chat.completion","created":1700000000,"model":"moonshot-v1-8k",'
              '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],'
              '"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}')


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# Measurement helpers ---------------------------------------------------------

def wrk(url: str, seconds: int = WRK_SECONDS, conns: int = 32, threads: int = 2, script: str | None = None) -> dict:
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(ROOT / "bench" / "wrk" / script)]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 20 + 60).stdout

    def ms(v: str) -> float:
        n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
        return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    lat = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
    }


def best_of(fn, rounds: int = 2) -> dict:
    runs = [fn() for _ in range(rounds)]
    return max(runs, key=lambda r: r["rps"])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def user_sys_seconds(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_split(pid: int) -> tuple[int, int]:
    """(sockets, everything else) open in a process."""
    sockets = other = 0
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{f}")
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            other += 1
    return sockets, other


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# Stacks ------------------------------------------------------------------------

def http_stack() -> tuple[kimistack.Stack, dict]:
    ports = {k: kimistack.free_port() for k in ("baseline", "fixed", "proxy")}
    run = RUNS / "http"
    extra = f"""
    # Benchmark baselines (bench/run.py).
    upstream kimi_baseline {{ server unix:{run}/baseline.sock; }}
    upstream fixed_upstream {{ server 127.0.0.1:{ports['fixed']}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{ports['baseline']};
        location / {{ include /etc/nginx/fastcgi_params; fastcgi_pass kimi_baseline; }}
    }}
    server {{
        listen 127.0.0.1:{ports['fixed']};
        location = /v1/chat/completions {{ default_type application/json; return 200 '{COMPLETION}'; }}
        location = /v1/models {{ default_type application/json; return 200 '{{"object":"list","data":[{{"id":"moonshot-v1-8k","object":"model"}}]}}'; }}
    }}
    server {{
        listen 127.0.0.1:{ports['proxy']};
        location /v1/ {{
            proxy_pass http://fixed_upstream/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""
    cfg = {"upstream": {"baseURL": f"http://127.0.0.1:{ports['fixed']}/v1", "apiKey": "sk-bench-placeholder"},
           "server": {"minThreads": int(os.environ.get("BENCH_MIN_THREADS", "2"))},
           "rateLimit": {"windowMs": 60000, "maxRequests": 1_000_000_000}}
    s = kimistack.Stack(run, config=cfg, workers=int(os.environ.get("BENCH_WORKERS", "2")), simulator=False, nginx_workers=2, extra_servers=extra,
                        access_log=False, upstream_base=cfg["upstream"]["baseURL"])
    s.start()
    exe = s.run / "baseline_fcgi"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench" / "baseline_fcgi.c"), "-lfcgi"], check=True)
    argv = ["spawn-fcgi", "-s", str(s.run / "baseline.sock"), "-M", "0660", "-F", "2", "-P", str(s.run / "baseline.pid")]
    if kimistack.web_user():
        argv += ["-G", kimistack.web_user()]
    subprocess.run(argv + ["--", str(exe)], check=True, capture_output=True)
    s.wait_url(f"http://127.0.0.1:{ports['baseline']}/health")
    return s, ports


def stop_baseline(s: kimistack.Stack) -> None:
    try:
        for pid in (s.run / "baseline.pid").read_text().split():
            os.kill(int(pid), 15)
    except (FileNotFoundError, ProcessLookupError):
        pass


# Scenarios ---------------------------------------------------------------------

def warm_up(*urls_and_scripts) -> None:
    """A short unmeasured run first: pools grow, caches fill, connections are
    kept, as on a server that has been up for a while."""
    for url, script in urls_and_scripts:
        wrk(url, seconds=2, script=script)


def scenario_health(s, ports) -> dict:
    log("1: GET /health, gateway vs C libfcgi baseline")
    warm_up((s.base + "/health", None), (f"http://127.0.0.1:{ports['baseline']}/health", None))
    gw = best_of(lambda: wrk(s.base + "/health"))
    base = best_of(lambda: wrk(f"http://127.0.0.1:{ports['baseline']}/health"))
    return {"gateway": gw, "baseline": base, "rps_ratio": gw["rps"] / base["rps"], "p99_ratio": gw["p99_ms"] / base["p99_ms"],
            "targets": {"rps_ratio": ">= 0.9", "p99_ratio": "<= 1.5"}}


def scenario_completion(s, ports) -> dict:
    log("2: POST /v1/chat/completions, gateway vs nginx proxy_pass")
    warm_up((s.base + "/v1/chat/completions", "post.lua"), (f"http://127.0.0.1:{ports['proxy']}/v1/chat/completions", "post.lua"))
    gw = best_of(lambda: wrk(s.base + "/v1/chat/completions", script="post.lua"))
    base = best_of(lambda: wrk(f"http://127.0.0.1:{ports['proxy']}/v1/chat/completions", script="post.lua"))
    return {"gateway": gw, "baseline": base, "rps_ratio": gw["rps"] / base["rps"], "p99_ratio": gw["p99_ms"] / base["p99_ms"],
            "targets": {"rps_ratio": ">= 0.5", "p99_ratio": "<= 2"}}


def ab(url: str, n: int, body: bytes | None = None, conns: int = 16) -> None:
    """Exactly `n` requests (wrk runs for a duration, ab for a count)."""
    cmd = ["ab", "-q", "-k", "-n", str(n), "-c", str(conns)]
    if body is not None:
        f = RUNS / "ab-body.json"
        f.write_bytes(body)
        cmd += ["-p", str(f), "-T", "application/json"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=900).stdout
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if (failed and int(failed.group(1))) or non2xx:
        raise RuntimeError(f"ab reported failures:\n{out[-1500:]}")


def scenario_leak(s) -> dict:
    log("6: leak check, RSS and fds after 10,000 and after 200,000 requests")
    pids = s.worker_pids()
    chat = json.dumps({"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "Say hello."}]}).encode()
    app = json.dumps({"message": "Say hello."}).encode()

    def drive(total: int) -> None:
        # A third each: /health, /v1 non-stream, /api non-stream.
        ab(s.base + "/health", total // 3)
        ab(s.base + "/v1/chat/completions", total // 3, chat)
        ab(s.base + "/api/chat/completion", total - 2 * (total // 3), app)

    def snapshot() -> dict:
        split = [fd_split(p) for p in pids]
        return {"rss_kb": sum(rss_kb(p) for p in pids), "fds": sum(fd_count(p) for p in pids),
                "sockets": sum(x[0] for x in split), "other_fds": sum(x[1] for x in split),
                "threads": sum(threads(p) for p in pids)}

    # The same load pattern before both marks, so the pool (and with it the
    # kept FastCGI and upstream connections, one per thread) has reached its
    # size: what remains is growth per request, i.e. a leak.
    drive(10_000)
    at10k = snapshot()
    drive(190_000)
    at200k = snapshot()
    # Sockets come and go with nginx's cache of kept connections; they are
    # bounded by the pool: per thread one kept FastCGI connection, one
    # upstream connection and libcurl's wake-up socketpair (2), plus the
    # listener. Everything else must be equal.
    bound = lambda snap: 4 * snap["threads"] + 1  # noqa: E731
    return {"after_10k": at10k, "after_200k": at200k, "rss_growth_mb": (at200k["rss_kb"] - at10k["rss_kb"]) / 1024,
            "fd_delta": at200k["fds"] - at10k["fds"], "other_fd_delta": at200k["other_fds"] - at10k["other_fds"],
            "sockets_within_bound": at10k["sockets"] <= bound(at10k) and at200k["sockets"] <= bound(at200k),
            "thread_delta": at200k["threads"] - at10k["threads"],
            "targets": {"rss_growth_mb": "<= 5", "other_fd_delta": "== 0", "sockets_within_bound": "true"}}


def stream_once(host: str, port: int, path: str, body: bytes, headers: dict) -> tuple[float, float, int]:
    import http.client
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    r.read1(1)
    ttfb = time.perf_counter() - t0
    chunks = 0
    buf = b""
    while True:
        data = r.read1(65536)
        if not data:
            break
        buf += data
    total = time.perf_counter() - t0
    chunks = buf.count(b'"content":"') - buf.count(b'"content":""')
    c.close()
    return ttfb, total, chunks


def scenario_stream_overhead(s) -> dict:
    log("3: 200-chunk stream, gateway vs the simulator directly")
    runs = 8 if QUICK else 20
    body = json.dumps({"model": "moonshot-v1-8k", "stream": True,
                       "messages": [{"role": "user", "content": "[sim:tokens=200,delay=5]"}]}).encode()
    h = {"Content-Type": "application/json"}
    direct, via = [], []
    for _ in range(runs):
        direct.append(stream_once("127.0.0.1", s.ports["sim"], "/v1/chat/completions", body, {**h, "Authorization": "Bearer x"}))
        via.append(stream_once("127.0.0.1", s.ports["plain"], "/v1/chat/completions", body, h))
    assert all(v[2] == 200 for v in direct + via), "a stream lost chunks"
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    return {"runs": runs, "direct_ttfb_ms": med(direct, 0) * 1000, "gateway_ttfb_ms": med(via, 0) * 1000,
            "ttfb_added_ms": (med(via, 0) - med(direct, 0)) * 1000,
            "direct_total_ms": med(direct, 1) * 1000, "gateway_total_ms": med(via, 1) * 1000,
            "total_added_pct": (med(via, 1) / med(direct, 1) - 1) * 100,
            "targets": {"ttfb_added_ms": "<= 1", "total_added_pct": "<= 10"}}


async def one_stream(port: int, body: bytes) -> tuple[int, bool]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    data = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    writer.close()
    ok = data.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in data
    return data.count(b'"content":"') - data.count(b'"content":""'), ok


def scenario_concurrent_streams(s, n: int = 1000, chunks: int = 50) -> dict:
    log(f"4: {n} concurrent streams of {chunks} chunks, 20 ms apart")
    body = json.dumps({"model": "moonshot-v1-8k", "stream": True,
                       "messages": [{"role": "user", "content": f"[sim:tokens={chunks},delay=20]"}]}).encode()
    pids = s.worker_pids()
    sim_pid = s.procs["simulator"].pid
    cpu0 = sum(cpu_seconds(p) for p in pids)
    sim_cpu0 = cpu_seconds(sim_pid)
    rss0 = sum(rss_kb(p) for p in pids)
    peak = {"rss": 0, "threads": 0}
    done = {"flag": False}

    async def sample():
        while not done["flag"]:
            peak["rss"] = max(peak["rss"], sum(rss_kb(p) for p in pids))
            peak["threads"] = max(peak["threads"], sum(threads(p) for p in pids))
            await asyncio.sleep(0.05)

    async def main():
        sampler = asyncio.create_task(sample())
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one_stream(s.ports["plain"], body)))
            if i % 100 == 99:
                await asyncio.sleep(0.02)  # stagger the connects a little (listen backlogs)
        t0 = time.perf_counter()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        done["flag"] = True
        await sampler
        return results, elapsed

    results, elapsed = asyncio.run(main())
    complete = [r for r in results if not isinstance(r, BaseException) and r[1] and r[0] == chunks]
    errors = [r for r in results if isinstance(r, BaseException) or not r[1]]
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    total_chunks = sum(r[0] for r in results if not isinstance(r, BaseException))
    return {"streams": n, "chunks_per_stream": chunks, "complete": len(complete), "errors": len(errors),
            "wall_s": elapsed, "rss_before_mb": rss0 / 1024, "peak_rss_mb": peak["rss"] / 1024,
            "peak_threads": peak["threads"], "processes": len(pids),
            "gateway_cpu_s": cpu, "gateway_cpu_s_per_1000_chunks": cpu / max(1, total_chunks) * 1000,
            "simulator_cpu_s": cpu_seconds(sim_pid) - sim_cpu0,
            "targets": {"complete": f"== {n}", "errors": "== 0", "peak_rss_mb": "<= 150"}}


def scenario_limiter() -> dict:
    log("5: shared rate limiter, 1 and 4 processes")
    exe = ROOT / ".build" / "release" / "kimi-bench"
    out = {}
    for p in (1, 4):
        r = subprocess.run([str(exe), "limiter", "--file", str(RUNS / "limiter.bin"), "--processes", str(p),
                            "--checks", "300000" if QUICK else "2000000"], capture_output=True, text=True, check=True)
        out[f"{p}_process"] = json.loads(r.stdout)
    out["ns_per_check_4_processes"] = out["4_process"]["nsPerCheck"]
    out["targets"] = {"ns_per_check_4_processes": "<= 2000"}
    return out


# Report --------------------------------------------------------------------------

def verdict(value: float, target: str) -> str:
    op, num = target.split()
    ok = {"<=": value <= float(num), ">=": value >= float(num), "==": value == float(num)}[op]
    return "met" if ok else "MISSED"


def write_report(r: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(r, indent=2))
    h, c, st, cs, lim, leak = r["health"], r["completion"], r["stream"], r["concurrent"], r["limiter"], r["leak"]
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
        f"| 3 | 200-chunk stream, median TTFB ms | {f(st['gateway_ttfb_ms'])} | {f(st['direct_ttfb_ms'])} (simulator direct) | +{f(st['ttfb_added_ms'])} ms | ≤ +1 ms | {verdict(st['ttfb_added_ms'], '<= 1')} |",
        f"| 3 | 200-chunk stream, median total ms | {f(st['gateway_total_ms'], 1)} | {f(st['direct_total_ms'], 1)} | +{f(st['total_added_pct'], 1)} % | ≤ +10 % | {verdict(st['total_added_pct'], '<= 10')} |",
        f"| 4 | 1,000 concurrent streams complete | {cs['complete']} / {cs['streams']} ({cs['errors']} errors) | | | all, no errors | {verdict(cs['complete'], '>= ' + str(cs['streams']))} |",
        f"| 4 | peak RSS of {cs['processes']} gateway processes | {f(cs['peak_rss_mb'], 1)} MB ({cs['peak_threads']} threads) | {f(cs['rss_before_mb'], 1)} MB idle | | ≤ 150 MB | {verdict(cs['peak_rss_mb'], '<= 150')} |",
        f"| 4 | gateway CPU s per 1,000 chunks | {f(cs['gateway_cpu_s_per_1000_chunks'], 4)} | simulator {f(cs['simulator_cpu_s'], 2)} s total | | reported | — |",
        f"| 5 | rate-limit check, 4 processes contending | {f(lim['4_process']['nsPerCheck'], 0)} ns | {f(lim['1_process']['nsPerCheck'], 0)} ns (1 process) | {f(lim['4_process']['nsPerCheck'] / lim['1_process']['nsPerCheck'])} | ≤ 2,000 ns | {verdict(lim['ns_per_check_4_processes'], '<= 2000')} |",
        f"| 6 | RSS growth 10k → 200k requests | {f(leak['rss_growth_mb'])} MB | {f(leak['after_10k']['rss_kb'] / 1024, 1)} MB at 10k | | ≤ 5 MB | {verdict(leak['rss_growth_mb'], '<= 5')} |",
        f"| 6 | open fds (not sockets) 10k → 200k | {leak['after_200k']['other_fds']} | {leak['after_10k']['other_fds']} at 10k | Δ {leak['other_fd_delta']} | equal | {verdict(leak['other_fd_delta'], '== 0')} |",
        f"| 6 | sockets 10k → 200k (threads {leak['after_10k']['threads']} → {leak['after_200k']['threads']}) | {leak['after_200k']['sockets']} | {leak['after_10k']['sockets']} at 10k | ≤ 4 per thread + 1 | bounded | {'met' if leak['sockets_within_bound'] else 'MISSED'} |",
        "",
        "Notes:",
        "- Scenarios 1, 2 and 6 run the gateway as 2 processes (`spawn-fcgi -F 2`), the C baseline as 2 processes; nginx has 2 workers and no access log.",
        "- Scenario 2's upstream is nginx answering a fixed completion (`return 200`); the rate limiter is on (with a limit never reached), as in production.",
        f"- Scenario 3 runs {st['runs']} streams each way, alternating; the direct path is the simulator behind the same nginx.",
        f"- Scenario 4 runs 4 gateway processes; the 1,000 streams took {f(cs['wall_s'], 2)} s of wall time ({cs['chunks_per_stream']} chunks × 20 ms = 1 s minimum each).",
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


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    r = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
         "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.release()}"}
    r["limiter"] = scenario_limiter()
    s, ports = http_stack()
    try:
        r["health"] = scenario_health(s, ports)
        r["completion"] = scenario_completion(s, ports)
        r["leak"] = scenario_leak(s)
    finally:
        stop_baseline(s)
        s.stop()
    cfg = {"server": {"minThreads": 8, "maxThreads": 600}, "rateLimit": {"enabled": False}}
    s = kimistack.Stack(RUNS / "streams", config=cfg, workers=4, nginx_workers=2, access_log=False)
    s.start()
    try:
        r["stream"] = scenario_stream_overhead(s)
        r["concurrent"] = scenario_concurrent_streams(s)
    finally:
        s.stop()
    write_report(r)
    print((RESULTS / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
