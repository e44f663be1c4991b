"""Side by side, one stack: the gateway (side A), whatever KIMI_TWIN_BIN runs
as the twin pool (side B; a prototype here), and nginx proxy_pass (P) to the
same fixed upstream, in alternating wrk rounds. Per side: req/s at 32
connections, CPU µs per request of its processes (user, sys) and of nginx's
workers, context switches per request, p50/p99 at one connection.

  KIMI_TWIN_BIN=/tmp/relay.sh PYTHONPATH=tools python3 -m bench.prototypes.compare [rounds] [seconds]

(from the repository's root: `bench` is a package, its `lib` imported by name.)
"""
from __future__ import annotations

import statistics
import subprocess
import sys

from bench.lib.measure import context_switches, cpu_split, wrk
from bench.lib.stacks import http_stack, stop_baseline, twin_pids


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    s, ports = http_stack()
    try:
        nginx = [int(x) for x in subprocess.run(["pgrep", "-P", str(s.procs["nginx"].pid)], capture_output=True, text=True).stdout.split()]
        pools = {"A gateway": s.worker_pids(), "B twin": twin_pids(s), "P proxy_pass": []}
        urls = {"A gateway": ports["side_a"], "B twin": ports["side_b"], "P proxy_pass": ports["proxy"]}
        seen: dict[str, list[dict]] = {k: [] for k in urls}
        for i in range(rounds):
            for name in (list(urls) if i % 2 == 0 else ["B twin", "A gateway", "P proxy_pass"]):
                url = f"http://127.0.0.1:{urls[name]}/v1/chat/completions"
                pids = pools[name]
                c0, n0, s0 = cpu_split(pids), cpu_split(nginx), context_switches(pids)
                r = wrk(url, seconds=secs, script="post.lua")
                c1, n1, s1 = cpu_split(pids), cpu_split(nginx), context_switches(pids)
                one = wrk(url, seconds=secs, conns=1, threads=1, script="post.lua")
                if r["errors"] or one["errors"]:
                    raise SystemExit(f"{name}: runs had errors ({r['errors']}, {one['errors']}): not a figure")
                per = lambda a, b: (b - a) / r["requests"]  # noqa: E731
                seen[name].append({"rps": r["rps"], "user_us": per(c0[0], c1[0]) * 1e6, "sys_us": per(c0[1], c1[1]) * 1e6,
                                   "nginx_us": per(sum(n0), sum(n1)) * 1e6, "vcsw": per(s0[0], s1[0]), "ivcsw": per(s0[1], s1[1]),
                                   "c1_p50_us": one["p50_ms"] * 1000, "c1_p99_us": one["p99_ms"] * 1000})
        proxy = {k: statistics.median(x[k] for x in seen["P proxy_pass"]) for k in seen["P proxy_pass"][0]}
        for name, rows in seen.items():
            m = {k: statistics.median(x[k] for x in rows) for k in rows[0]}
            print(f"{name:13} {m['rps']:8.0f} req/s ({m['rps'] / proxy['rps']:.2f}x proxy_pass)  CPU {m['user_us'] + m['sys_us']:5.1f} us "
                  f"({m['user_us']:.1f} + {m['sys_us']:.1f})  nginx {m['nginx_us']:.1f} us ({m['nginx_us'] / proxy['nginx_us']:.2f}x)  "
                  f"switches {m['vcsw']:.2f} + {m['ivcsw']:.2f}  c1 p50 {m['c1_p50_us']:.0f} us p99 {m['c1_p99_us']:.0f} us")
    finally:
        stop_baseline(s)
        s.stop()


if __name__ == "__main__":
    main()
