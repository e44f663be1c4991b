"""Issue #16: two "machines" (two nginx + gateway stacks with 4 processes
each and their own limiter files) share one exact limit through one real
redis-server; a killed Redis leaves each machine on its own exact file
limit with no 5xx and no request waiting on it, and a restarted one is
shared again within seconds; a password-protected Redis, and a wrong
password that falls back with a clear log line."""
from __future__ import annotations

import http.client as http_client
import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import subprocess

import pytest
from kimistack import RedisServer, binary

from conftest import RUNS, http, make_stack, wait_for

PASSWORD = "fleet-test-" + "p" * 20


def fleet_config(redis: RedisServer, max_requests: int, password_env: bool = False, **redis_extra) -> dict:
    return {
        "state": {"backend": "redis"},
        "redis": {"url": redis.url, "timeoutMs": 50, "prefix": f"fleet-{uuid.uuid4().hex[:8]}:", **redis_extra},
        "rateLimit": {"windowMs": 3_600_000, "maxRequests": max_requests},
        "server": {"trustedProxies": ["127.0.0.1"]},
    }


def post_chat(s, i: int, client: str = "198.51.100.7") -> tuple[int, float]:
    t0 = time.monotonic()
    c = http_client.HTTPConnection("127.0.0.1", s.ports["plain"], timeout=60)
    c.request("POST", "/api/chat/completion", body=json.dumps({"message": f"n{i} [sim:tokens=1]"}),
              headers={"Content-Type": "application/json", "X-Forwarded-For": client})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, time.monotonic() - t0


def info(s, client: str) -> int:
    return http("GET", s.base + "/api/info", headers={"X-Forwarded-For": client}).status


def under_load(a, b, first_client: int, action) -> list[tuple[int, float]]:
    """Four clients, two per machine, posting chats one after another while
    `action()` runs: every (status, seconds) they saw."""
    stop = threading.Event()
    seen: list[tuple[int, float]] = []

    def load(s, n):
        k = 0
        while not stop.is_set():
            seen.append(post_chat(s, k, client=f"192.0.2.{first_client + n}"))
            k += 1
    threads = [threading.Thread(target=load, args=(s, n)) for n, s in enumerate([a, b, a, b])]
    for t in threads:
        t.start()
    try:
        action()
    finally:
        stop.set()
        for t in threads:
            t.join()
    return seen


def fallbacks(s) -> float:
    for line in http("GET", s.base + "/metrics").text.splitlines():
        if line.startswith("kimi_gateway_state_fallbacks_total "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture
def fleet(request):
    """One Redis and two machines; the test's `max_requests` marker or 50."""
    marker = request.node.get_closest_marker("limit")
    limit = marker.args[0] if marker else 50
    with RedisServer(RUNS / f"redis-{request.node.name[:40]}") as redis:
        cfg = fleet_config(redis, limit)
        with make_stack("fleet-a", workers=4, config=cfg) as a, make_stack("fleet-b", workers=4, config=cfg) as b:
            assert a.config_path != b.config_path
            yield redis, a, b


@pytest.mark.limit(50)
def test_500_concurrent_requests_over_two_machines_admit_exactly_50(fleet):
    redis, a, b = fleet
    before = a.sim_stats()["chatRequests"] + b.sim_stats()["chatRequests"]
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda i: post_chat(a if i % 2 else b, i), range(500)))
    statuses = [st for st, _ in results]
    assert statuses.count(200) == 50 and statuses.count(429) == 450, sorted(set(statuses))
    # Both machines admitted some: the limit is the fleet's, not each machine's.
    assert a.sim_stats()["chatRequests"] + b.sim_stats()["chatRequests"] - before == 50
    # The words live in Redis under the prefix, with TTLs.
    keys = redis.cli("--scan", "--pattern", "fleet-*").split()
    assert keys and all(int(redis.cli("PTTL", k)) > 0 for k in keys)
    assert fallbacks(a) == 0 and fallbacks(b) == 0


@pytest.mark.limit(20)
def test_a_killed_redis_leaves_each_machine_its_own_exact_limit_and_a_restarted_one_is_shared_again(fleet):
    redis, a, b = fleet
    # Shared: 20 for the fleet.
    shared = [info(a if i % 2 else b, "192.0.2.1") for i in range(30)]
    assert shared.count(200) == 20

    # Killed under load: every answer is a 200 or a 429, none waits on Redis.
    def kill():
        time.sleep(0.5)
        redis.kill()
        time.sleep(1.5)
    seen = under_load(a, b, 100, kill)
    assert seen and {st for st, _ in seen} <= {200, 429}, sorted({st for st, _ in seen})
    slowest = max(d for _, d in seen)
    assert slowest < 1.0, f"a request waited {slowest:.3f} s (the timeout is 50 ms)"

    # Each machine now limits alone, exactly, on its own file table.
    alone = [info(a, "192.0.2.2") for _ in range(25)] + [info(b, "192.0.2.2") for _ in range(25)]
    assert alone[:25].count(200) == 20 and alone[25:].count(200) == 20
    for s in (a, b):
        log = s.log("gateway").read_text()
        assert f"redis {redis.url} unreachable" in log
        assert "limits are this machine's own (the file table)" in log
    assert fallbacks(a) > 0 and fallbacks(b) > 0

    health = http("GET", a.base + "/health").json()["state"]
    assert health == {"backend": "redis", "redis": redis.url, "shared": False}

    # Restarted (empty: no persistence): shared again within 5 s.
    redis.start()
    t0 = time.monotonic()
    back = wait_for(lambda: info(a, "192.0.2.3") and info(b, "192.0.2.3") and redis.cli("DBSIZE") not in ("", "0")
                    and "is back after" in a.log("gateway").read_text() and "is back after" in b.log("gateway").read_text(), timeout=5)
    assert back and time.monotonic() - t0 <= 5.5
    # A new client: 20 for the whole fleet again.
    again = [info(a if i % 2 else b, "192.0.2.4") for i in range(30)]
    assert again.count(200) == 20
    assert http("GET", b.base + "/health").json()["state"]["shared"] is True


@pytest.mark.limit(100000)
def test_a_redis_that_stops_answering_costs_a_request_at_most_the_timeout(fleet):
    """A hung Redis (SIGSTOP: connections stay open, nothing answers) is
    the case the timeout exists for: each process waits once, 50 ms, then
    decides on its file without asking until a probe finds Redis again."""
    redis, a, b = fleet
    assert all(info(s, "192.0.2.9") == 200 for s in (a, b))
    def hang():
        time.sleep(0.3)
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        time.sleep(0.3)
    seen = under_load(a, b, 200, hang)
    assert {st for st, _ in seen} == {200}, sorted({st for st, _ in seen})
    slowest = max(d for _, d in seen)
    assert slowest < 0.5, f"a request waited {slowest:.3f} s on a Redis whose timeout is 50 ms"
    assert "no answer within 50 ms" in a.log("gateway").read_text() + b.log("gateway").read_text()
    assert wait_for(lambda: http("GET", a.base + "/health").json()["state"]["shared"], timeout=5)


def test_a_password_protected_redis_and_a_wrong_password(request):
    with RedisServer(RUNS / "redis-auth", password=PASSWORD) as redis:
        cfg = fleet_config(redis, 10)
        with make_stack("fleet-auth", workers=2, config=cfg, env={"REDIS_PASSWORD": PASSWORD}) as s:
            statuses = [info(s, "192.0.2.50") for _ in range(12)]
            assert statuses.count(200) == 10
            assert redis.cli("DBSIZE") != "0"
            assert PASSWORD not in s.log("gateway").read_text()
            assert http("GET", s.base + "/health").json()["state"]["shared"] is True
        cfg = fleet_config(redis, 10)
        with make_stack("fleet-nopw", workers=1, config=cfg) as s:
            assert info(s, "192.0.2.52") == 200
            assert "Redis requires a password" in s.log("gateway").read_text()
        cfg = fleet_config(redis, 10)
        with make_stack("fleet-wrongpw", workers=2, config=cfg, env={"REDIS_PASSWORD": "not-the-password"}) as s:
            # Still limited, by the file: 10 of 12, no 5xx.
            statuses = [info(s, "192.0.2.51") for _ in range(12)]
            assert statuses.count(200) == 10 and statuses.count(429) == 2
            log = s.log("gateway").read_text()
            assert "AUTH refused" in log and "check REDIS_PASSWORD" in log
            assert "limits are this machine's own (the file table)" in log
            assert "not-the-password" not in log


def test_check_config_shows_the_fleet_backend_without_the_password(tmp_path):
    cfg = tmp_path / "g.json"
    cfg.write_text(json.dumps({"state": {"backend": "redis"}, "redis": {"url": "redis://10.1.2.3:6390/2"}}))
    r = subprocess.run([str(binary()), "check-config", "--config", str(cfg)], capture_output=True, text=True,
                       env={"REDIS_PASSWORD": "hidden-pw", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "redis redis://10.1.2.3:6390/2" in r.stdout + r.stderr and "password set" in r.stdout + r.stderr
    assert "hidden-pw" not in r.stdout + r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"state": {"backend": "redis"}, "redis": {"url": "redis://:secret@"}}))
    r = subprocess.run([str(binary()), "check-config", "--config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "redis.url" in r.stderr and "secret" not in r.stderr


def test_an_upstream_key_refused_on_one_machine_is_out_on_the_other(request):
    """Key health is the fleet's: machine A learns the key is over its tier
    (429 rate_limit_reached_error); machine B (within 100 ms) sends nothing
    upstream with it until its Retry-After has passed."""
    with RedisServer(RUNS / "redis-keys") as redis:
        cfg = fleet_config(redis, 1000)
        cfg["rateLimit"] = {"enabled": False}
        cfg["upstream"] = {"keys": [{"key": "sk-fleet-k-" + "k" * 24, "name": "k"}], "retries": 0}
        with make_stack("fleet-keys-a", workers=2, config=cfg) as a, \
                make_stack("fleet-keys-b", workers=2, config=cfg, upstream_base=a.sim_base) as b:
            body = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}]}
            assert http("POST", b.base + "/v1/chat/completions", body=body).status == 200
            rule = a.sim_base.removesuffix("/v1") + "/sim/keys"
            assert http("POST", rule, body={"match": "sk-fleet-k-", "failure": "ratelimited"}).status == 200
            try:
                assert http("POST", a.base + "/v1/chat/completions", body=body).status == 429
                time.sleep(0.15)  # each process reuses a health word it read in the last 100 ms
                before = a.sim_stats()["chatRequests"]
                r = http("POST", b.base + "/v1/chat/completions", body=body)
                # The pool rests after the upstream's rate limit: the same 429, not a 503.
                assert r.status == 429 and int(r.headers["Retry-After"]) >= 1, (r.status, r.text)
                assert r.json()["error"]["type"] == "rate_limit_reached_error", r.text
                assert a.sim_stats()["chatRequests"] == before, "machine B used a key machine A saw refused"
            finally:
                http("POST", rule, body={"match": "sk-fleet-k-", "failure": ""})
            assert wait_for(lambda: http("POST", b.base + "/v1/chat/completions", body=body).status == 200, timeout=6)


def test_a_daily_budget_spent_on_one_machine_is_spent_on_the_other(request):
    """Budgets are the fleet's: machine B refuses a key whose day machine A
    used up, though B's own ledger has never seen the key; `/api/usage` on
    B shows the fleet's figures."""
    key = "tk-fleet-budget-" + "b" * 20
    with RedisServer(RUNS / "redis-budget") as redis:
        cfg = fleet_config(redis, 1000)
        cfg["auth"] = {"keys": [{"key": key, "name": "budgeted", "budget": {"tokensPerDay": 100}}]}
        with make_stack("fleet-budget-a", workers=2, config=cfg) as a, make_stack("fleet-budget-b", workers=2, config=cfg) as b:
            headers = {"x-api-key": key}
            spent = 0
            for _ in range(10):  # answers of 30 tokens, the last capped to what the budget has left
                r = http("POST", a.base + "/v1/chat/completions", headers=headers,
                         body={"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "spend [sim:tokens=30]"}]})
                if r.status == 429:
                    break
                assert r.status == 200, r.text
                spent += r.json()["usage"]["total_tokens"]
            assert r.status == 429 and 0 < spent <= 100, (r.status, spent)
            before = b.sim_stats()["chatRequests"]
            r = http("POST", b.base + "/api/chat/completion", body={"message": "on the other machine"}, headers=headers)
            assert r.status == 429 and "Daily token budget" in r.json()["error"], r.text
            assert b.sim_stats()["chatRequests"] == before
            mine = http("GET", b.base + "/api/usage", headers=headers).json()["data"]
            assert mine["today"]["totalTokens"] == spent and mine["budget"]["remainingToday"] == 100 - spent

            # The ledgers stay per machine; `kimi-gateway usage` totals several.
            assert http("POST", b.base + "/api/chat/completion", body={"message": "anonymous [sim:tokens=4]"}).status == 200
            time.sleep(0.4)  # drained (every 100 ms)

            def report(*dbs):
                argv = [str(binary()), "usage", "--config", str(a.config_path), "--by", "key", "--json"]
                for db in dbs:
                    argv += ["--ledger", str(db)]
                r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                assert r.returncode == 0, r.stderr
                return {row["group"]: row for row in json.loads(r.stdout)["rows"]}
            ra, rb = report(a.run / "gateway.db"), report(b.run / "gateway.db")
            both = report(a.run / "gateway.db", b.run / "gateway.db")
            assert set(both) == set(ra) | set(rb) and len(both) >= 2
            for g, row in both.items():
                for k in ("requests", "totalTokens"):
                    assert row[k] == ra.get(g, {}).get(k, 0) + rb.get(g, {}).get(k, 0), (g, k)
            missing = subprocess.run([str(binary()), "usage", "--config", str(a.config_path), "--ledger", "/nonexistent/x.db"],
                                     capture_output=True, text=True, timeout=30)
            assert missing.returncode != 0 and "no usage ledger at /nonexistent/x.db" in missing.stderr


FLEET_ADMIN = "fleet-admin-" + uuid.uuid4().hex


def keys_config(redis: RedisServer) -> dict:
    cfg = fleet_config(redis, 1_000_000)
    cfg["auth"] = {"required": True, "keys": [{"name": "ops", "key": FLEET_ADMIN, "role": "admin"}]}
    return cfg


def chat_as(s, key: str, model: str = "moonshot-v1-8k") -> int:
    return http("POST", s.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                body={"model": model, "messages": [{"role": "user", "content": "hi [sim:tokens=1]"}]}).status


def admin_call(s, method: str, path: str, body=None):
    return http(method, s.base + path, body=body, headers={"x-api-key": FLEET_ADMIN})


def everywhere_on(s, key: str, status: int, tries: int = 8, **kw) -> bool:
    """`tries` requests over the machine's four processes all answer `status`."""
    return all(chat_as(s, key, **kw) == status for _ in range(tries))


def test_keys_created_changed_and_revoked_on_one_machine_hold_on_the_other_within_a_second(request):
    """Issue #31: a key made on machine A works on B within 1 s; a change or
    a revocation made on B holds on A within 1 s; a key made while Redis is
    down reaches the other machine once Redis is back."""
    with RedisServer(RUNS / "redis-fleet-keys") as redis:
        cfg = keys_config(redis)
        with make_stack("fleet-keys-a", workers=4, config=cfg) as a, make_stack("fleet-keys-b", workers=4, config=cfg) as b:
            created = admin_call(a, "POST", "/api/admin/keys", {"name": "mobile-app"})
            assert created.status == 201, created.text
            key, key_id = created.json()["data"]["key"], created.json()["data"]["id"]
            assert everywhere_on(a, key, 200)
            assert wait_for(lambda: everywhere_on(b, key, 200), timeout=1.0)
            assert key_id in [k["id"] for k in admin_call(b, "GET", "/api/admin/keys").json()["data"]]
            # Only the hash travels: the secret is in no Redis value.
            assert key not in redis.cli("HGETALL", cfg["redis"]["prefix"] + "keys")

            # Changed on B: A holds it to its new models within a second.
            assert admin_call(b, "PATCH", f"/api/admin/keys/{key_id}", {"models": ["moonshot-v1-32k"]}).status == 200
            assert wait_for(lambda: everywhere_on(a, key, 400), timeout=1.0)  # "Model ... is not allowed"
            assert everywhere_on(a, key, 200, model="moonshot-v1-32k")

            # Revoked on B: 401 on A within a second, and for good.
            assert admin_call(b, "DELETE", f"/api/admin/keys/{key_id}").status == 200
            assert wait_for(lambda: everywhere_on(a, key, 401, model="moonshot-v1-32k"), timeout=1.0)
            assert admin_call(a, "GET", f"/api/admin/keys/{key_id}").json()["data"]["state"] == "revoked"

            # Redis down: A still issues keys (its own database); B gets them once Redis is back.
            redis.kill()
            later = admin_call(a, "POST", "/api/admin/keys", {"name": "made-while-down"})
            assert later.status == 201, later.text
            second = later.json()["data"]["key"]
            assert everywhere_on(a, second, 200) and chat_as(b, second) == 401
            redis.start()
            assert wait_for(lambda: everywhere_on(b, second, 200), timeout=5)
            assert "published 1 key change(s) to the fleet" in a.log("gateway").read_text()
            assert "adopted" in b.log("gateway").read_text()
