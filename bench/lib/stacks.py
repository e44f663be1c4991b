"""The stacks the scenarios run against: the gateway with its baselines behind one nginx."""
from __future__ import annotations

import os
import subprocess

import kimistack

from .measure import RUNS

COMPLETION = ('{"id":"chatcmpl-fixed","object":"chat.completion","created":1700000000,"model":"moonshot-v1-8k",'
              '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],'
              '"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}')
ROOT = kimistack.ROOT


def http_stack() -> tuple[kimistack.Stack, dict]:
    # The stack's ports and the baselines' ports, chosen together so no two coincide.
    names = kimistack.STACK_PORTS + ("baseline", "fixed", "proxy")
    chosen = dict(zip(names, kimistack.free_ports(len(names))))
    ports = {k: chosen[k] for k in ("baseline", "fixed", "proxy")}
    run = RUNS / "http"
    extra = kimistack.render_text(kimistack.CONF / "nginx" / "bench-servers.conf.template", {
        "BASELINE_SOCK": kimistack.public_dir(run) / "baseline.sock", "BASELINE_PORT": ports["baseline"],
        "FIXED_PORT": ports["fixed"], "PROXY_PORT": ports["proxy"], "COMPLETION": COMPLETION})
    cfg = {"upstream": {"baseURL": f"http://127.0.0.1:{ports['fixed']}/v1", "apiKey": "sk-bench-placeholder"},
           "rateLimit": {"windowMs": 60000, "maxRequests": 1_000_000_000}}
    s = kimistack.Stack(run, config=cfg, workers=int(os.environ.get("BENCH_WORKERS", "2")), simulator=False, nginx_workers=2, extra_servers=extra,
                        access_log=False, upstream_base=cfg["upstream"]["baseURL"],
                        ports={k: chosen[k] for k in kimistack.STACK_PORTS})
    s.start()
    exe = s.run / "baseline_fcgi"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench" / "baseline_fcgi.c"), "-lfcgi"], check=True)
    argv = ["spawn-fcgi", "-s", str(s.pub / "baseline.sock"), "-M", "0660", "-F", "2", "-P", str(s.run / "baseline.pid")]
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
