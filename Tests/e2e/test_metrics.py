"""Issue #14: `GET /metrics` counts every process of the machine (one shared
table), passes promtool, keeps its series bounded, survives a killed worker,
is only for operators, and a real Prometheus scrapes it through nginx."""
from __future__ import annotations

import http.client as http_client
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from kimistack import free_ports

from conftest import RUNS, http, make_stack, wait_for

ADMIN = "mt-admin-" + "a" * 24


@pytest.fixture(scope="module")
def mstack():
    config = {"rateLimit": {"enabled": False}, "auth": {"keys": [{"key": ADMIN, "name": "ops", "role": "admin"}]}}
    with make_stack("metrics", workers=4, supervised=True, config=config) as s:
        yield s


def scrape(s) -> str:
    r = http("GET", s.base + "/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), (r.status, r.text[:200])
    return r.text


def value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


INFO_200 = 'kimi_gateway_requests_total{route="/api/info",method="GET",status="200"}'


def test_requests_total_is_the_whole_machine_in_one_scrape(mstack):
    s = mstack
    before = value(scrape(s), INFO_200)
    n = 400
    with ThreadPoolExecutor(max_workers=16) as ex:
        statuses = list(ex.map(lambda _: http("GET", s.base + "/api/info").status, range(n)))
    assert statuses == [200] * n
    # Any process answers the scrape, and every one says the machine's total.
    for _ in range(8):
        assert value(scrape(s), INFO_200) - before == n
    text = scrape(s)
    assert 'kimi_gateway_build_info{version="' in text
    assert re.search(r'kimi_gateway_request_duration_seconds_count\{route="/api/info"\} \d+', text)
    assert "kimi_gateway_in_flight_requests " in text
    assert "kimi_gateway_limiter_table_used_slots " in text


def test_promtool_accepts_the_exposition(mstack):
    s = mstack
    http("POST", s.base + "/v1/chat/completions", body={"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "count my tokens"}]})
    text = scrape(s)
    assert 'kimi_gateway_tokens_total{model="moonshot-v1-8k",kind="prompt"}' in text
    assert 'kimi_gateway_upstream_duration_seconds_bucket{model="moonshot-v1-8k",le="+Inf"}' in text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_random_paths_do_not_add_series(mstack):
    s = mstack
    http("GET", s.base + "/api/nothing-" + uuid.uuid4().hex)  # the unmatched series exist from here on
    http("GET", s.base + "/v1/nothing-" + uuid.uuid4().hex)
    count = lambda: len([l for l in scrape(s).splitlines() if l and not l.startswith("#")])  # noqa: E731
    before = count()
    with ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(lambda i: http("GET", s.base + f"/{'api' if i % 2 else 'v1'}/x{uuid.uuid4().hex}/{i}"), range(1000)))
    assert count() == before
    text = scrape(s)
    assert 'route="unmatched"' in text
    assert not [l for l in text.splitlines() if 'route="/api/x' in l or 'route="/v1/x' in l]


def test_a_killed_worker_keeps_the_machines_totals(mstack):
    s = mstack
    for _ in range(50):
        assert http("GET", s.base + "/api/info").status == 200
    before = value(scrape(s), INFO_200)
    victim = s.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: "starting a new one" in s.log("gateway").read_text(), timeout=10)
    assert wait_for(lambda: len(s.worker_pids()) == 4 and victim not in s.worker_pids(), timeout=10)
    assert value(scrape(s), INFO_200) >= before
    http("GET", s.base + "/api/info")
    assert value(scrape(s), INFO_200) >= before + 1


def test_only_operators_see_metrics():
    config = {"metrics": {"allowFrom": ["10.9.9.9/32"]}, "auth": {"keys": [{"key": ADMIN, "name": "ops", "role": "admin"},
                                                                          {"key": "mt-client-" + "c" * 24, "name": "app"}]}}
    with make_stack("metrics-closed", workers=1, config=config) as s:
        assert http("GET", s.base + "/metrics").status == 404
        assert http("GET", s.base + "/metrics", headers={"x-api-key": "mt-client-" + "c" * 24}).status == 404
        r = http("GET", s.base + "/metrics", headers={"x-api-key": ADMIN})
        assert r.status == 200 and "kimi_gateway_requests_total" in r.text


def test_a_real_prometheus_scrapes_the_gateway_through_nginx(mstack, tmp_path):
    s = mstack
    n = 37
    for _ in range(n):
        assert http("GET", s.base + "/v1/models").status == 200
    port = free_ports(1)[0]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: kimi-gateway
    metrics_path: /metrics
    static_configs: [{{targets: ["127.0.0.1:{s.ports['plain']}"]}}]
""")
    proc = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        query = f"http://127.0.0.1:{port}/api/v1/query?query=" + \
            "sum(kimi_gateway_requests_total%7Broute%3D%22%2Fv1%2Fmodels%22%2Cstatus%3D%22200%22%7D)"

        def answer():
            try:
                r = http("GET", query, timeout=5)
            except OSError:
                return None
            result = r.json().get("data", {}).get("result", []) if r.status == 200 else []
            return result and float(result[0]["value"][1])
        assert wait_for(answer, timeout=30, step=0.5) == n
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_non_stream_answer_says_the_gateways_own_time_in_server_timing(mstack):
    s = mstack
    for path, body in [("/v1/chat/completions", {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "[sim:first=200] timed"}]}),
                       ("/api/chat/completion", {"message": "[sim:first=200] timed"})]:
        r = http("POST", s.base + path, body=body)
        m = re.fullmatch(r"gateway;dur=([\d.]+), upstream;dur=([\d.]+)", r.headers["Server-Timing"])
        assert r.status == 200 and m, r.headers.get("Server-Timing")
        gateway, upstream = float(m.group(1)), float(m.group(2))
        assert upstream >= 200 and gateway < upstream, (gateway, upstream)  # the simulator waited 200 ms; the gateway far less


def test_the_shipped_prometheus_config_and_alert_rules_pass_promtool():
    from conftest import ROOT
    conf = ROOT / "conf" / "prometheus"
    for args in (["check", "rules", str(conf / "kimi-gateway.rules.yml")], ["check", "config", str(conf / "prometheus.yml")]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    # Every metric the rules name is one the gateway exports.
    rules = (conf / "kimi-gateway.rules.yml").read_text()
    names = set(re.findall(r"kimi_gateway_[a-z_]+", rules))
    assert names <= {"kimi_gateway_requests_total", "kimi_gateway_upstream_errors_total", "kimi_gateway_limiter_table_used_slots",
                     "kimi_gateway_state_fallbacks_total"}, names  # the last: test_fleet_redis.py sees it counted


def held_stream(s, broke: list, done: threading.Event, i: int) -> None:
    """A slow stream (20 s) held open until `done`; appends i to `broke` if
    its worker died under it (the connection ended before [DONE])."""
    c = http_client.HTTPConnection("127.0.0.1", s.ports["plain"], timeout=60)
    try:
        c.request("POST", "/v1/chat/completions", body=json.dumps({"model": "moonshot-v1-8k", "stream": True,
                  "messages": [{"role": "user", "content": f"hold {i} [sim:tokens=400,delay=50]"}]}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        while not done.is_set():
            line = r.readline()
            if not line:
                broke.append(i)
                return
            if b"[DONE]" in line:
                return
    except OSError:
        broke.append(i)
    finally:
        c.close()


def test_a_killed_workers_requests_in_flight_and_threads_leave_the_gauges(mstack):
    s = mstack
    n = 16
    restarts = value(scrape(s), "kimi_gateway_worker_restarts_total")
    broke: list[int] = []
    done = threading.Event()
    threads = [threading.Thread(target=held_stream, args=(s, broke, done, i), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    try:
        # The scrape is a request in flight too.
        assert wait_for(lambda: value(scrape(s), "kimi_gateway_in_flight_requests") == n + 1, timeout=15)
        assert value(scrape(s), "kimi_gateway_worker_threads") >= 4 * 2  # server.minThreads each
        killed = 0
        for victim in list(s.worker_pids()):
            os.kill(victim, signal.SIGKILL)
            killed += 1
            assert wait_for(lambda: len(s.worker_pids()) == 4 and victim not in s.worker_pids(), timeout=10)
            if wait_for(lambda: broke, timeout=3):
                break
        assert broke, "no worker held a stream"
        time.sleep(0.5)  # every stream of the dead workers has noticed
        # Without per-process gauges the dead workers' streams stayed counted forever.
        assert wait_for(lambda: value(scrape(s), "kimi_gateway_in_flight_requests") == n - len(broke) + 1, timeout=5), \
            (value(scrape(s), "kimi_gateway_in_flight_requests"), n, broke)
        assert wait_for(lambda: value(scrape(s), "kimi_gateway_worker_restarts_total") == restarts + killed, timeout=5)
        assert value(scrape(s), "kimi_gateway_worker_threads") >= 4 * 2
    finally:
        done.set()
        for t in threads:
            t.join(30)
    assert wait_for(lambda: value(scrape(s), "kimi_gateway_in_flight_requests") == 1, timeout=10)


def test_config_reloads_are_counted_by_result(mstack):
    s = mstack
    ok = 'kimi_gateway_config_reloads_total{result="ok"}'
    rejected = 'kimi_gateway_config_reloads_total{result="rejected"}'
    before = scrape(s)
    original = s.config_path.read_text()
    try:
        cfg = json.loads(original)
        cfg.setdefault("server", {})["maxBufferedBytes"] = cfg.get("server", {}).get("maxBufferedBytes", 64 << 20) + 1
        s.write_config(cfg)
        # Each of the 4 processes reloads on its own (within a second: each checks once a second).
        assert wait_for(lambda: value(scrape(s), ok) == value(before, ok) + 4, timeout=10), scrape(s)
        s.config_path.write_text("{ not json")
        assert wait_for(lambda: value(scrape(s), rejected) == value(before, rejected) + 4, timeout=10)
    finally:
        s.config_path.write_text(original)
    assert wait_for(lambda: value(scrape(s), ok) == value(before, ok) + 8, timeout=10)
    r = subprocess.run(["promtool", "check", "metrics"], input=scrape(s), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_json_logs_are_one_object_a_line_and_switch_on_reload():
    with make_stack("json-logs", workers=2, supervised=True, config={"log": {"format": "json"}, "rateLimit": {"enabled": False}}) as s:
        assert http("GET", s.base + "/api/info").status == 200
        assert http("POST", s.base + "/v1/chat/completions", body={"model": "moonshot-v1-8k",
                    "messages": [{"role": "user", "content": "hi [sim:tokens=2]"}]}).status == 200
        assert http("GET", s.base + "/api/info?q=%22quoted%22").status == 200
        log = s.log("gateway")
        assert wait_for(lambda: log.read_text().count('"level":"access"') >= 3, timeout=5)
        lines = [l for l in log.read_text().splitlines() if l.strip()]
        bad = [l for l in lines if not l.startswith("{")]
        assert not bad, bad
        objects = [json.loads(l) for l in lines]  # every line, the supervisor's too
        access = [o for o in objects if o["level"] == "access"]
        chat = next(o for o in access if o["path"] == "/v1/chat/completions")
        assert chat["method"] == "POST" and chat["status"] == 200 and chat["model"] == "moonshot-v1-8k"
        assert isinstance(chat["durationMs"], float) and chat["rid"] and chat["ip"] == "127.0.0.1"
        assert any(o["level"] == "info" and "serving on" in o["msg"] for o in objects)
        cfg = json.loads(s.config_path.read_text())
        cfg["log"]["format"] = "text"
        s.write_config(cfg)
        time.sleep(1.5)
        mark = len(log.read_text().splitlines())
        for _ in range(4):
            assert http("GET", s.base + "/health").status == 200
        after = log.read_text().splitlines()[mark:]
        assert any(" access GET /health 200 " in l for l in after), after
