"""Issue #31: keys as data — client keys issued, changed, rotated and revoked at
run time through the admin API, honoured by every worker within a second,
without a reload; secrets shown once and stored only as their hash."""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import gateway_log, http, ledger_rows, make_stack, wait_for

ADMIN = "admin-" + uuid.uuid4().hex
CLIENT = "client-" + uuid.uuid4().hex
CHAT = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi [sim:tokens=2]"}]}


@pytest.fixture(scope="module")
def stack():
    cfg = {"auth": {"required": True, "keys": [{"name": "ops", "key": ADMIN, "role": "admin"}, {"name": "app", "key": CLIENT}]},
           "rateLimit": {"enabled": True, "windowMs": 60000, "maxRequests": 100000}}
    with make_stack("keys", workers=2, config=cfg) as s:
        yield s


def admin(stack, method, path, body=None, key=ADMIN):
    return http(method, stack.base + path, body=body, headers={"x-api-key": key})


def chat(stack, key, body=CHAT):
    return http("POST", stack.base + "/v1/chat/completions", body=body, headers={"Authorization": f"Bearer {key}"})


def everywhere(stack, key, status, tries=12):
    """`tries` requests (spread over both workers by nginx): all answer `status`."""
    return [chat(stack, key).status for _ in range(tries)] == [status] * tries


def test_a_created_key_works_at_once_in_every_worker_and_its_secret_is_shown_once(stack):
    r = admin(stack, "POST", "/api/admin/keys", {"name": "new-dev", "models": ["moonshot-v1-8k"], "budget": {"tokensPerDay": 100000},
                                                 "note": "onboarding"})
    assert r.status == 201, r.text
    data = r.json()["data"]
    secret = data["key"]
    assert secret.startswith("kg-") and len(secret) == 43 and data["source"] == "created" and data["state"] == "active"
    assert wait_for(lambda: everywhere(stack, secret, 200), timeout=1.5)
    listed = admin(stack, "GET", "/api/admin/keys").json()["data"]
    mine = next(k for k in listed if k["id"] == data["id"])
    assert "key" not in mine and secret not in admin(stack, "GET", "/api/admin/keys").text
    assert {k["name"]: k["source"] for k in listed}["ops"] == "config"
    assert admin(stack, "GET", f"/api/admin/keys/{data['id']}").json()["data"]["note"] == "onboarding"
    me = http("GET", stack.base + "/api/keys/me", headers={"x-api-key": secret}).json()["data"]
    assert me["name"] == "new-dev" and me["budgetUse"]["day"]["limit"] == 100000 and "key" not in me
    # The ledger names it; the log has an audit line, never the secret.
    rid = "kd-" + uuid.uuid4().hex[:10]
    http("POST", stack.base + "/v1/chat/completions", body=CHAT, headers={"Authorization": f"Bearer {secret}", "X-Request-Id": rid})
    row = wait_for(lambda: ledger_rows(stack, "request_id = ?", (rid,)), timeout=10)[0]
    assert row["key_name"] == "new-dev"
    log = gateway_log(stack, f"created key {data['id']}")
    assert "audit: admin ops(" in log and secret not in log


def test_a_change_applies_within_a_second_without_a_reload(stack):
    data = admin(stack, "POST", "/api/admin/keys", {"name": "narrowed"}).json()["data"]
    assert wait_for(lambda: everywhere(stack, data["key"], 200, 4), timeout=1.5)
    r = admin(stack, "PATCH", f"/api/admin/keys/{data['id']}", {"models": ["moonshot-v1-32k"]})
    assert r.status == 200 and r.json()["data"]["models"] == ["moonshot-v1-32k"]
    assert wait_for(lambda: everywhere(stack, data["key"], 400), timeout=1.5)  # moonshot-v1-8k no longer its model
    assert admin(stack, "PATCH", f"/api/admin/keys/{data['id']}", {"enabled": False}).status == 200
    assert wait_for(lambda: everywhere(stack, data["key"], 401), timeout=1.5)


def test_revocation_is_honoured_by_every_worker_within_a_second(stack):
    data = admin(stack, "POST", "/api/admin/keys", {"name": "leaked"}).json()["data"]
    assert wait_for(lambda: everywhere(stack, data["key"], 200, 4), timeout=1.5)
    revoked_at = time.monotonic()
    r = admin(stack, "DELETE", f"/api/admin/keys/{data['id']}")
    assert r.status == 200 and r.json()["data"]["state"] == "revoked"
    assert wait_for(lambda: everywhere(stack, data["key"], 401), timeout=2)
    assert time.monotonic() - revoked_at < 1.5
    # Kept for the ledger, listed as revoked; revoking again changes nothing.
    assert admin(stack, "GET", f"/api/admin/keys/{data['id']}").json()["data"]["state"] == "revoked"


def test_a_rotated_key_has_a_new_secret_and_the_old_one_works_until_its_grace_ends(stack):
    data = admin(stack, "POST", "/api/admin/keys", {"name": "rotating"}).json()["data"]
    old = data["key"]
    r = admin(stack, "POST", f"/api/admin/keys/{data['id']}/rotate", {"graceSeconds": 2})
    assert r.status == 200, r.text
    new = r.json()["data"]["key"]
    assert new != old and new.startswith("kg-")
    assert wait_for(lambda: everywhere(stack, new, 200, 4) and everywhere(stack, old, 200, 4), timeout=1.5)
    time.sleep(2.2)
    expired = chat(stack, old)
    assert expired.status == 401 and "expired" in expired.json()["error"]["message"]
    assert everywhere(stack, new, 200, 4)


def test_a_key_expires_at_its_time(stack):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    data = admin(stack, "POST", "/api/admin/keys", {"name": "temp", "expiresAt": at}).json()["data"]
    assert data["expiresAt"] == at
    assert wait_for(lambda: everywhere(stack, data["key"], 200, 2), timeout=1.5)
    assert wait_for(lambda: chat(stack, data["key"]).status == 401, timeout=6)


@pytest.mark.parametrize("method, path, body, status, needle", [
    ("POST", "/api/admin/keys", {}, 400, "'name' is required"),
    ("POST", "/api/admin/keys", {"name": "x", "rateLimit": {"windowMs": 1000, "maxRequests": 0}}, 400, "rateLimit.maxRequests"),
    ("POST", "/api/admin/keys", {"name": "x", "role": "root"}, 400, "role"),
    ("POST", "/api/admin/keys", {"name": "x", "secret": "mine"}, 400, "Unknown field 'secret'"),
    ("POST", "/api/admin/keys", {"name": "x", "expiresAt": "yesterday"}, 400, "expiresAt"),
    ("POST", "/api/admin/keys", {"name": "x", "maxConcurrent": 0}, 400, "maxConcurrent"),
    ("GET", "/api/admin/keys/key_nope", None, 404, "No such key"),
    ("PATCH", "/api/admin/keys/key_nope", {"note": "x"}, 404, "No such key"),
    ("DELETE", "/api/admin/keys/key_nope", None, 404, "No such key"),
])
def test_bad_admin_requests_get_a_clear_error(stack, method, path, body, status, needle):
    r = admin(stack, method, path, body)
    assert r.status == status and needle in r.json()["error"], r.text


def test_config_keys_are_read_only_and_only_admins_manage_keys(stack):
    listed = admin(stack, "GET", "/api/admin/keys").json()["data"]
    config_id = next(k["id"] for k in listed if k["name"] == "app")
    r = admin(stack, "PATCH", f"/api/admin/keys/{config_id}", {"note": "x"})
    assert r.status == 409 and "config file" in r.json()["error"]
    assert admin(stack, "GET", "/api/admin/keys", key=CLIENT).status == 403
    assert admin(stack, "POST", "/api/admin/keys", {"name": "x"}, key=CLIENT).status == 403
    assert admin(stack, "GET", "/api/admin/keys", key="kg-" + "x" * 40).status == 401


def test_concurrent_admin_changes_lose_no_update(stack):
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: admin(stack, "POST", "/api/admin/keys", {"name": f"batch-{i}"}), range(16)))
    assert [r.status for r in made] == [201] * 16
    ids = {r.json()["data"]["id"] for r in made}
    listed = {k["id"] for k in admin(stack, "GET", "/api/admin/keys").json()["data"]}
    assert ids <= listed and len(ids) == 16
    target = next(iter(ids))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda f: admin(stack, "PATCH", f"/api/admin/keys/{target}", f),
                      [{"note": "a"}, {"models": ["moonshot-v1-8k"]}, {"maxConcurrent": 3}, {"budget": {"tokensPerDay": 5000}}]))
    k = admin(stack, "GET", f"/api/admin/keys/{target}").json()["data"]
    assert (k["note"], k["models"], k["maxConcurrent"], k["budget"]) == ("a", ["moonshot-v1-8k"], 3, {"tokensPerDay": 5000})


def test_created_keys_survive_a_restart(stack):
    data = admin(stack, "POST", "/api/admin/keys", {"name": "durable"}).json()["data"]
    stack.stop_gateway()
    stack.start_gateway()
    assert wait_for(lambda: chat(stack, data["key"]).status == 200, timeout=10)


def hold_streams(stack, key, n, tag):
    """`n` slow streams of `key` in flight (each ~8 s); their threads."""
    def stream(i):
        body = {"model": "moonshot-v1-8k", "stream": True,
                "messages": [{"role": "user", "content": f"slow {i} [sim:tokens=160,delay=50,id={tag}-{i}]"}]}
        http("POST", stack.base + "/v1/chat/completions", body=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    assert wait_for(lambda: all(stack.sim_stats()["byId"].get(f"{tag}-{i}") == "streaming" for i in range(n)), timeout=10)
    return threads


def test_max_concurrent_caps_a_keys_requests_in_flight_across_workers():
    cfg = {"auth": {"required": True, "keys": [{"name": "ops", "key": ADMIN, "role": "admin"},
                                               {"name": "capped-config", "key": CLIENT, "maxConcurrent": 1}]},
           "rateLimit": {"enabled": False}}
    with make_stack("keys-concurrency", workers=2, supervised=True, config=cfg) as s:
        data = admin(s, "POST", "/api/admin/keys", {"name": "capped", "maxConcurrent": 2}).json()["data"]
        key = data["key"]
        assert wait_for(lambda: chat(s, key).status == 200, timeout=1.5)
        threads = hold_streams(s, key, 2, "cap")
        before = s.sim_stats()["chatRequests"]
        refused = chat(s, key)
        assert refused.status == 429 and "maxConcurrent" in refused.json()["error"]["message"], refused.text
        assert int(refused.headers["Retry-After"]) >= 1 and s.sim_stats()["chatRequests"] == before  # nothing upstream
        assert chat(s, CLIENT).status == 200  # another key has its own count (a config key, cap 1)
        for t in threads:
            t.join()
        assert chat(s, key).status == 200
        # A worker killed mid-request gives its requests back: the restarted workers sweep its share.
        threads = hold_streams(s, key, 2, "killed")
        assert chat(s, key).status == 429
        for pid in s.worker_pids():
            os.kill(pid, signal.SIGKILL)
        for t in threads:
            t.join()
        assert wait_for(lambda: chat(s, key).status == 200, timeout=5)
        # And the cap still holds after the sweep: exactly 2 again.
        threads = hold_streams(s, key, 2, "again")
        assert chat(s, key).status == 429
        for t in threads:
            t.join()


def test_the_cli_manages_keys_on_the_same_database_while_the_gateway_runs(stack):
    import json as jsonlib
    import subprocess
    import kimistack

    def cli(*args):
        r = subprocess.run([str(kimistack.binary()), "keys", *args, "--config", str(stack.config_path)],
                           input="", capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r
    made = jsonlib.loads(cli("create", "--name", "from-cli", "--spec", '{"maxConcurrent": 5, "note": "ops laptop"}').stdout)
    assert made["key"].startswith("kg-") and made["maxConcurrent"] == 5
    assert wait_for(lambda: chat(stack, made["key"]).status == 200, timeout=1.5)
    listed = [jsonlib.loads(l) for l in cli("list").stdout.splitlines()]
    assert made["id"] in {k["id"] for k in listed} and made["key"] not in cli("list").stdout
    assert jsonlib.loads(cli("update", made["id"], '{"note": null}').stdout)["note"] is None
    rotated = jsonlib.loads(cli("rotate", made["id"]).stdout)
    assert wait_for(lambda: chat(stack, rotated["key"]).status == 200 and chat(stack, made["key"]).status == 401, timeout=1.5)
    assert jsonlib.loads(cli("revoke", made["id"]).stdout)["state"] == "revoked"
    assert wait_for(lambda: chat(stack, rotated["key"]).status == 401, timeout=1.5)
    bad = subprocess.run([str(kimistack.binary()), "keys", "create", "--name", "x", "--spec", '{"role": "root"}', "--config", str(stack.config_path)],
                         input="", capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "role" in bad.stderr


def test_a_keys_usage_per_day_and_a_created_admin_key_on_metrics():
    cfg = {"auth": {"required": True, "keys": [{"name": "ops", "key": ADMIN, "role": "admin"}, {"name": "app", "key": CLIENT}]},
           "rateLimit": {"enabled": False}, "metrics": {"allowFrom": ["192.0.2.0/24"]}}
    with make_stack("keys-usage", workers=1, config=cfg) as s:
        made = admin(s, "POST", "/api/admin/keys", {"name": "charted"}).json()["data"]
        assert wait_for(lambda: chat(s, made["key"]).status == 200, timeout=1.5)
        assert chat(s, made["key"]).status == 200 and chat(s, CLIENT).status == 200
        today = time.strftime("%Y-%m-%d", time.gmtime())

        def rows():
            return admin(s, "GET", f"/api/admin/usage?groupBy=day&key={made['id']}").json()["data"]["rows"]
        got = wait_for(lambda: (lambda r: r if r and r[0]["requests"] == 2 else None)(rows()), timeout=10)
        assert got and [r["group"] for r in got] == [today], rows()  # its own two chats, not app's
        # /metrics from outside metrics.allowFrom: an admin key, a created one too.
        op = admin(s, "POST", "/api/admin/keys", {"name": "scraper", "role": "admin"}).json()["data"]
        assert wait_for(lambda: http("GET", s.base + "/metrics", headers={"Authorization": f"Bearer {op['key']}"}).status == 200, timeout=1.5)
        assert http("GET", s.base + "/metrics", headers={"Authorization": f"Bearer {made['key']}"}).status == 404
