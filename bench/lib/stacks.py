"""The stacks the scenarios run against: the gateway with its baselines behind one nginx."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import kimistack  # noqa: E402

from .measure import RUNS  # noqa: E402

COMPLETION = ('{"id":"chatcmpl-fixed","object":"chat.completion","created":1700000000,"model":"moonshot-v1-8k",'
              '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],'
              '"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}')
ROOT = Path(__file__).resolve().parents[2]


def http_stack() -> tuple[kimistack.Stack, dict]:
    # The stack's ports and the baselines' ports, chosen together so no two coincide.
    names = kimistack.STACK_PORTS + ("baseline", "fixed", "proxy")
    chosen = dict(zip(names, kimistack.free_ports(len(names))))
    ports = {k: chosen[k] for k in ("baseline", "fixed", "proxy")}
    run = RUNS / "http"
    extra = f"""
    # Benchmark baselines (bench/run.py).
    upstream kimi_baseline {{ server unix:{kimistack.public_dir(run)}/baseline.sock; }}
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
