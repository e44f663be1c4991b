"""Issue: FastCGI responder foundation, end to end through real nginx,
lighttpd and spawn-fcgi."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time

import pytest

from conftest import http, make_stack, wait_for
from kimistack import fcgi_client


@pytest.mark.parametrize("web", ["nginx", "lighttpd"])
def test_health_through_both_web_servers(stack, web):
    base = stack.base if web == "nginx" else stack.lighttpd_base
    r = http("GET", base + "/health")
    assert r.status == 200
    j = r.json()
    assert j["success"] is True and j["status"] == "healthy" and j["engine"] == "ready"
    assert j["timestamp"].endswith("Z") and j["version"]
    assert "simulator" in j["upstream"] and j["simulated"] is True
    assert r.headers["X-Request-Id"]


@pytest.mark.parametrize("web", ["nginx", "lighttpd"])
def test_info_through_both_web_servers(stack, web):
    base = stack.base if web == "nginx" else stack.lighttpd_base
    j = http("GET", base + "/api/info").json()
    assert j["success"] is True
    paths = {e["path"]: e["methods"] for e in j["data"]["endpoints"]}
    assert paths["/v1/chat/completions"] == ["POST"]
    assert paths["/health"] == ["GET"]
    assert any(m["id"] == "moonshot-v1-8k" for m in j["data"]["models"])
    assert j["data"]["features"]["streaming"] is True


@pytest.mark.parametrize("web", ["nginx", "lighttpd"])
def test_unknown_route_is_404_in_the_faces_format(stack, web):
    base = stack.base if web == "nginx" else stack.lighttpd_base
    r = http("GET", base + "/api/nope")
    assert r.status == 404 and r.json() == {"success": False, "error": "Route not found: /api/nope"}
    r = http("GET", base + "/v1/nope")
    assert r.status == 404 and r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("web", ["nginx", "lighttpd"])
def test_wrong_method_is_405_with_allow(stack, web):
    base = stack.base if web == "nginx" else stack.lighttpd_base
    r = http("POST", base + "/health", body={})
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert r.json()["success"] is False
    r = http("GET", base + "/v1/chat/completions")
    assert r.status == 405 and "POST" in r.headers["Allow"] and "error" in r.json()


def test_nginx_body_limit_is_a_json_413(stack):
    r = http("POST", stack.base + "/v1/chat/completions", body=b"x" * (4 * 1024 * 1024 + 10))
    assert r.status == 413  # nginx's client_max_body_size, before the gateway
    assert r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("text", ["a" * 450_000, "\u6587" * 390_000], ids=["450k Latin", "390k CJK"])
def test_prompts_for_the_largest_context_fit_the_default_caps(stack, text):
    # Sent as JSON with \uXXXX escapes for the CJK text (2.3 MB), as JavaScript clients do.
    body = ('{"model":"kimi-k2.6","messages":[{"role":"user","content":"' + text + ' [sim:tokens=2]"}]}').encode()
    r = http("POST", stack.base + "/v1/chat/completions", body=body)
    assert r.status == 200, r.text[:300]


def test_gateway_body_limit_is_413_in_the_faces_format():
    with make_stack("bodylimit", workers=1, config={"server": {"maxBodyBytes": 1000}}) as s:
        r = http("POST", s.base + "/v1/chat/completions", body=b"{" + b" " * 2000 + b"}")
        assert r.status == 413
        assert r.json()["error"]["message"] == "Request body exceeds the limit of 1000 bytes"
        r = http("POST", s.base + "/api/chat/completion", body=b"{" + b" " * 2000 + b"}")
        assert r.status == 413 and r.json()["success"] is False
        # The process keeps serving.
        assert http("GET", s.base + "/health").status == 200


def fcgi_params(path="/api/chat/completion", length="0"):
    return {"REQUEST_METHOD": "POST", "REQUEST_URI": path, "CONTENT_LENGTH": length,
            "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1"}


def test_short_body_is_400_over_raw_fastcgi(stack):
    status, headers, body = fcgi_client.request(str(stack.gateway_sock), fcgi_params(length="100"), b'{"message":"hi"}')
    assert status == 400
    assert json.loads(body) == {"success": False, "error": "Request body is shorter than its Content-Length"}
    assert headers["content-length"] == str(len(body))


@pytest.mark.parametrize("length", ["-1", "+5", "1e3", "0x10", " 5", "abc", "99999999999999999999"])
def test_malformed_content_length_is_400(stack, length):
    status, _, body = fcgi_client.request(str(stack.gateway_sock), fcgi_params(path="/v1/chat/completions", length=length), b"")
    assert status == 400, body
    assert json.loads(body)["error"]["message"] == "invalid Content-Length"


def test_oversized_content_length_is_413_before_reading(stack):
    # Announces 2 GiB and sends nothing: the cap is checked before allocating.
    status, _, body = fcgi_client.request(str(stack.gateway_sock), fcgi_params(length=str(2 << 30)), b"")
    assert status == 413 and json.loads(body)["success"] is False


def test_responses_are_cgi_status_not_http_status_line(stack):
    status, headers, _ = fcgi_client.request(str(stack.gateway_sock), {"REQUEST_METHOD": "GET", "REQUEST_URI": "/health"})
    assert status == 200 and headers["status"] == "200 OK"


def test_unix_socket_is_0660(stack):
    mode = stat.S_IMODE(os.stat(stack.gateway_sock).st_mode)
    assert mode & 0o007 == 0, oct(mode)


def test_sigterm_drains_an_in_flight_request():
    with make_stack("drain", workers=1) as s:
        result = {}

        def slow():
            result["r"] = http("POST", s.base + "/api/chat/completion",
                               body={"message": "slow [sim:tokens=10,delay=150,id=drain]"}, timeout=30)

        t = threading.Thread(target=slow)
        t.start()
        # In flight for sure: the upstream has it (it then takes about 1.35 s).
        assert wait_for(lambda: s.sim_stats()["byId"].get("drain") == "received", timeout=10)
        pids = s.gateway_pids()
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        t.join(20)
        r = result["r"]
        assert r.status == 200 and len(r.json()["data"]["message"].split()) == 10
        assert wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), timeout=10)
        log = s.log("gateway").read_text()
        assert "received SIGTERM" in log and "drained, exiting" in log
        # Nobody accepts any more: nginx answers 502 for the gateway's routes.
        assert http("GET", s.base + "/health").status == 502


def test_config_edit_is_picked_up_without_restart(stack):
    cfg = json.loads(stack.config_path.read_text())
    before = http("GET", stack.base + "/api/info").json()["data"]["limits"]["maxMessages"]
    pids = stack.gateway_pids()
    try:
        cfg.setdefault("limits", {})["maxMessages"] = before + 7
        stack.write_config(cfg)
        # Every process picks it up (checked at most once a second).
        def all_updated():
            seen = {http("GET", stack.base + "/api/info").json()["data"]["limits"]["maxMessages"] for _ in range(8)}
            return seen == {before + 7}
        assert wait_for(all_updated, timeout=5, step=0.3)
        # A broken edit keeps the previous config and is logged.
        stack.config_path.write_text('{"limits": {"maxMessages": ')
        time.sleep(1.3)
        assert http("GET", stack.base + "/api/info").json()["data"]["limits"]["maxMessages"] == before + 7
        assert "config change rejected" in stack.log("gateway").read_text()
        assert stack.gateway_pids() == pids  # no restart
    finally:
        cfg["limits"]["maxMessages"] = before
        stack.write_config(cfg)
        time.sleep(1.2)


def test_supervisor_restarts_a_worker_that_dies():
    with make_stack("supervised", workers=2, supervised=True) as s:
        workers = s.worker_pids()
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        assert wait_for(lambda: len(s.worker_pids()) == 2 and workers[0] not in s.worker_pids(), timeout=10)
        for _ in range(10):
            assert http("GET", s.base + "/health").status == 200
        assert "died (signal 9); starting a new one" in s.log("gateway").read_text()


def test_check_config_reports_and_exits_nonzero(tmp_path):
    import kimistack
    bad = tmp_path / "bad.json"
    bad.write_text('{"rateLimit": {"maxRequests": "ten"}}')
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "rateLimit.maxRequests: must be an integer" in r.stderr
    good = tmp_path / "good.json"
    good.write_text('{"upstream": {"apiKey": "sk-live-do-not-print-me"}}')
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and "config OK" in r.stdout
    assert "sk-live-do-not-print-me" not in r.stdout and "fingerprint sha256:" in r.stdout


def test_logs_one_line_per_request_without_secrets(stack):
    rid = "log-check-123"
    http("GET", stack.base + "/api/info", headers={"X-Request-Id": rid, "x-api-key": "sk-should-not-appear"})
    line = wait_for(lambda: [l for l in stack.log("gateway").read_text().splitlines() if f"rid={rid}" in l])
    assert len(line) == 1 and " GET /api/info 200 " in line[0]
    assert "sk-should-not-appear" not in stack.log("gateway").read_text()
    assert "sk-simulator-placeholder" not in stack.log("gateway").read_text()


def test_the_shipped_example_config_is_valid():
    import kimistack
    from conftest import ROOT
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(ROOT / "conf" / "kimi-gateway.example.json")],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items() if not k.startswith("KIMI_")})
    assert r.returncode == 0, r.stderr
    assert "rateLimit = 100 per 900000 ms" in r.stdout


def test_sighup_reopens_the_log_file_for_logrotate():
    with make_stack("logrotate", workers=2, supervised=True) as s:
        log = s.log("gateway")
        rotated = log.with_suffix(".log.1")
        os.rename(log, rotated)  # what logrotate does
        os.kill(s.gateway_pids()[0], signal.SIGHUP)  # the supervisor passes it on
        assert wait_for(lambda: log.exists() and log.read_text().count("log file reopened") == 3, timeout=15)
        http("GET", s.base + "/api/info", headers={"X-Request-Id": "after-rotate"})
        assert wait_for(lambda: "rid=after-rotate" in log.read_text())
        assert "rid=after-rotate" not in rotated.read_text()
        # Still serving, and still draining cleanly on SIGTERM afterwards.
        assert http("GET", s.base + "/health").status == 200
