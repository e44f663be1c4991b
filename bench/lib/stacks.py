"""The stacks the scenarios run against: the gateway with its baselines behind one nginx."""
from __future__ import annotations

import json
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
    names = kimistack.STACK_PORTS + ("baseline", "fixed", "proxy", "side_a", "side_b")
    chosen = dict(zip(names, kimistack.free_ports(len(names))))
    ports = {k: chosen[k] for k in ("baseline", "fixed", "proxy", "side_a", "side_b")}
    run = RUNS / "http"
    # The two sides of scenario 2d pass to their pools through the same
    # FastCGI settings as the site's (kimi-gateway-fastcgi.conf, only the
    # upstream's name changed), so they differ in nothing but the pool.
    fastcgi = (kimistack.CONF / "nginx" / "kimi-gateway-fastcgi.conf").read_text()
    extra = kimistack.render_text(kimistack.CONF / "nginx" / "bench-servers.conf.template", {
        "BASELINE_SOCK": kimistack.public_dir(run) / "baseline.sock", "BASELINE_PORT": ports["baseline"],
        "FIXED_PORT": ports["fixed"], "PROXY_PORT": ports["proxy"], "COMPLETION": COMPLETION,
        "TWIN_SOCK": kimistack.public_dir(run) / "twin.sock", "SIDE_A_PORT": ports["side_a"], "SIDE_B_PORT": ports["side_b"],
        "SIDE_A_FASTCGI": fastcgi, "SIDE_B_FASTCGI": fastcgi.replace("fastcgi_pass kimi_gateway;", "fastcgi_pass kimi_twin;")})
    cfg = {"upstream": {"baseURL": f"http://127.0.0.1:{ports['fixed']}/v1", "apiKey": "sk-bench-placeholder"},
           "rateLimit": {"windowMs": 60000, "maxRequests": 60_000_000}}
    s = kimistack.Stack(run, config=cfg, workers=int(os.environ.get("BENCH_WORKERS", "2")), simulator=False, nginx_workers=int(os.environ.get("BENCH_NGINX_WORKERS", "2")), extra_servers=extra,
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
    start_twin(s)
    s.wait_url(f"http://127.0.0.1:{ports['side_b']}/health")
    return s, ports


def twin_config_path(s: kimistack.Stack):
    return s.run / "twin.json"


def write_twin_config(s: kimistack.Stack, cfg: dict) -> None:
    """The twin pool's config, written as the stack writes its own."""
    tmp = s.run / "twin.json.tmp"
    tmp.write_text(json.dumps(cfg, indent=2))
    os.replace(tmp, twin_config_path(s))


def start_twin(s: kimistack.Stack, binary: str | None = None, one_session: bool = False) -> None:
    """A second gateway pool beside the stack's own: as many processes, the
    same binary and config (the same limiter table and database), its own
    socket and config file, for scenarios that run two configs at once.
    `binary`: another program in the twin's place (the libfcgi floor).
    `one_session`: one process that forks the others (`--workers N`), as
    the systemd unit and `make run` run the gateway, instead of spawn-fcgi
    forking each (spawn-fcgi puts every child in a session of its own,
    which a kernel with autogroup schedules as a group of its own)."""
    write_twin_config(s, json.loads(s.config_path.read_text()))
    forks = ["-F", "1"] if one_session else ["-F", str(s.workers)]
    argv = ["spawn-fcgi", "-s", str(s.pub / "twin.sock"), "-M", "0660", *forks, "-P", str(s.run / "twin.pid")]
    if kimistack.web_user():
        argv += ["-G", kimistack.web_user()]
    program = [binary or os.environ.get("KIMI_TWIN_BIN", str(kimistack.binary())), "serve", "--config", str(twin_config_path(s)), "--log-file", str(s.log("twin"))]
    if one_session:
        program += ["--workers", str(s.workers)]
    with open(s.log("twin"), "ab") as log:
        subprocess.run(argv + ["--", *program], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=s.gateway_env(), check=True)


def twin_pids(s: kimistack.Stack) -> list[int]:
    """The twin's processes, with the children of one that forks its workers."""
    pids = [int(x) for x in (s.run / "twin.pid").read_text().split()]
    for p in list(pids):
        out = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout
        pids += [int(x) for x in out.split()]
    return pids


def restart_twin(s: kimistack.Stack, binary: str | None = None, one_session: bool = False) -> None:
    """The twin pool stopped and started again (on `binary`, or the gateway)."""
    stop_pids(s, "twin.pid")
    (s.pub / "twin.sock").unlink(missing_ok=True)
    start_twin(s, binary, one_session)


def stop_pids(s: kimistack.Stack, name: str) -> None:
    """SIGTERM to the processes of a pid file, then SIGKILL to what is left after 5 s."""
    import time
    try:
        pids = [int(p) for p in (s.run / name).read_text().split()]
    except FileNotFoundError:
        return
    for sig in (15, 9):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while time.time() < deadline and any(kimistack.process_alive(p) for p in pids):
            time.sleep(0.05)


def stop_baseline(s: kimistack.Stack) -> None:
    """Stops what http_stack started beside the stack: the C baseline and the twin pool."""
    for name in ("baseline.pid", "twin.pid"):
        try:
            for pid in (s.run / name).read_text().split():
                try:
                    os.kill(int(pid), 15)
                except ProcessLookupError:
                    pass
        except FileNotFoundError:
            pass
