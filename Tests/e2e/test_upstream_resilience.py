"""Issue #13: a pool of Kimi keys whose health every process shares,
retries the client never sees, and a clean 503 when every key is out —
against nginx and 4 gateway processes, the simulator failing on cue."""
from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from kimistack import sse_data

from conftest import gateway_log, http, make_stack, wait_for

REFUSED = "sk-pool-refused-" + "r" * 24
OVERLOADED = "sk-pool-overloaded-" + "o" * 24
GOOD = "sk-pool-good-" + "g" * 24


def fingerprint(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def chat(s, content, stream=False, model="moonshot-v1-8k"):
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return http("POST", s.base + "/v1/chat/completions", body=body)


@pytest.fixture(scope="module")
def pool():
    config = {"rateLimit": {"enabled": False},
              "upstream": {"keys": [{"key": REFUSED, "name": "refused"}, {"key": OVERLOADED, "name": "busy"},
                                    {"key": GOOD, "name": "good"}],
                           "retries": 2, "retryBackoffMs": 20, "disabledKeySeconds": 600}}
    with make_stack("pool", workers=4, config=config) as s:
        yield s


def test_a_pool_with_a_refused_and_an_overloaded_key_answers_every_request(pool):
    s = pool
    before = s.sim_stats()["byKey"]
    with ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(lambda i: chat(s, f"pool request {i}"), range(200)))
    assert [r.status for r in results] == [200] * 200, sorted({(r.status, r.text[:120]) for r in results if r.status != 200})
    after = s.sim_stats()["byKey"]
    sent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # Every process learned from the first refusals: the refused key reached
    # the upstream a handful of times — at most once per request in flight
    # (8) before the first 401 came back, and each process's first model
    # list (4) — not once per request (~67 for a third of 200).
    assert 1 <= sent.get(fingerprint(REFUSED), 0) <= 12, sent
    assert 200 <= sent.get(fingerprint(GOOD), 0) <= 208, sent  # every chat, and each process's model list
    # /health: degraded, the refused key out with its reason; fingerprints, never keys.
    h = http("GET", s.base + "/health")
    assert h.status == 200 and h.json()["status"] == "degraded", h.text
    keys = h.json()["keys"]
    assert [k["name"] for k in keys["disabled"]] == ["refused"]
    assert "invalid_authentication_error" in keys["disabled"][0]["reason"] and keys["disabled"][0]["retryInSeconds"] > 500
    assert keys["disabled"][0]["fingerprint"] == fingerprint(REFUSED)
    assert {k["name"] for k in keys["healthy"]} == {"busy", "good"}  # an overload says nothing about a key
    assert REFUSED not in h.text and GOOD not in h.text
    # The log names the key refused once (a line a minute), by fingerprint, never the key.
    log = gateway_log(s, lambda t: "attempts=" in t and "upstream-key=good" in t)
    refusals = [l for l in log.splitlines() if "refused: invalid_authentication_error" in l]
    assert 1 <= len(refusals) <= 4 and fingerprint(REFUSED) in refusals[0], refusals  # one per process at most
    assert REFUSED not in log and GOOD not in log
    assert "attempts=" in log and "upstream-key=good" in log


@pytest.fixture(scope="module")
def single():
    config = {"rateLimit": {"enabled": False},
              "upstream": {"keys": [{"key": "sk-single-aaaaaaaaaaaaaaaaaaaaaaaa", "name": "only"}],
                           "retries": 2, "retryBackoffMs": 400, "disabledKeySeconds": 600}}
    with make_stack("retry", workers=2, config=config) as s:
        yield s


def test_a_one_off_overload_on_a_good_key_is_retried_there_not_on_the_sick_key(pool):
    """Refused, always overloaded and good keys; each request's first
    attempt meets a one-off overload. Once every usable key was tried, the
    third attempt takes the one tried longest ago (the good key) rather than
    a uniform pick that often returned to the key that had just failed."""
    s = pool
    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(lambda i: chat(s, f"one-off {i} [sim:overloaded=1]"), range(40)))
    assert [r.status for r in results] == [200] * 40, sorted({(r.status, r.text[:120]) for r in results if r.status != 200})


def test_an_overload_on_the_first_attempt_is_retried_and_the_client_sees_one_200(single):
    s = single
    before = s.sim_stats()
    rid = "retry-" + uuid.uuid4().hex[:12]
    r = http("POST", s.base + "/v1/chat/completions", headers={"X-Request-Id": rid},
             body={"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "[sim:overloaded=1] hello"}]})
    after = s.sim_stats()
    assert r.status == 200 and r.json()["choices"][0]["message"]["content"]
    assert after["chatRequests"] - before["chatRequests"] == 2
    assert after["overloadedAnswers"] - before["overloadedAnswers"] == 1
    # The log line and the usage ledger say how many attempts and which key.
    line = wait_for(lambda: [l for l in s.log("gateway").read_text().splitlines() if f"rid={rid}" in l and " access " in l], 5)
    assert line and "attempts=2" in line[0], line

    def row():
        db = sqlite3.connect(f"file:{s.run / 'gateway.db'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT upstream_key, attempts, status FROM usage WHERE request_id = ?", (rid,)).fetchone()
        finally:
            db.close()
    assert wait_for(row, timeout=5) == (fingerprint("sk-single-aaaaaaaaaaaaaaaaaaaaaaaa"), 2, 200)


def test_a_stream_overloaded_before_its_first_event_is_retried_invisibly(single):
    s = single
    before = s.sim_stats()["chatRequests"]
    r = chat(s, "[sim:overloaded=1,tokens=5] stream me", stream=True)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    data = sse_data(r.body)
    assert data[-1] == "[DONE]" and not any('"error"' in d for d in data), data
    assert s.sim_stats()["chatRequests"] - before == 2


def test_a_failure_after_the_first_event_is_one_error_event_and_no_retry(single):
    s = single
    before = s.sim_stats()["chatRequests"]
    r = chat(s, "[sim:cut=2,tokens=10] cut me", stream=True)
    data = sse_data(r.body)
    assert r.status == 200 and sum('"error"' in d for d in data) == 1, data
    assert s.sim_stats()["chatRequests"] - before == 1


def test_retries_stop_at_their_count_and_the_last_error_reaches_the_client(single):
    s = single
    before = s.sim_stats()["chatRequests"]
    r = chat(s, "[sim:overloaded=9] always busy")
    assert r.status == 429 and r.json()["error"]["type"] == "engine_overloaded_error", r.text
    assert s.sim_stats()["chatRequests"] - before == 3  # 1 + upstream.retries


def test_a_client_leaving_during_the_backoff_ends_the_request_with_no_further_attempt(single):
    s = single
    before = s.sim_stats()["chatRequests"]
    body = json.dumps({"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "[sim:overloaded=1] leaving"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", s.ports["plain"]))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # The first attempt is answered 429 at once; the backoff is 200-400 ms.
    assert wait_for(lambda: s.sim_stats()["chatRequests"] - before == 1, timeout=5)
    sock.close()
    time.sleep(1.5)
    assert s.sim_stats()["chatRequests"] - before == 1
    line = wait_for(lambda: [l for l in s.log("gateway").read_text().splitlines() if "client-left-in-backoff" in l], timeout=5)
    assert line, "the log says the client left during the backoff"


@pytest.fixture(scope="module")
def cooling():
    config = {"rateLimit": {"enabled": False},
              "upstream": {"keys": [{"key": "sk-cool-a-" + "a" * 24, "name": "a"}, {"key": "sk-cool-b-" + "b" * 24, "name": "b"}],
                           "retries": 1, "retryBackoffMs": 20, "retryDeadlineMs": 1000}}
    with make_stack("cooling", workers=4, config=config) as s:
        yield s


def sim_rule(s, match, failure):
    assert http("POST", s.sim_base.removesuffix("/v1") + "/sim/keys", body={"match": match, "failure": failure}).status == 200


def test_every_key_resting_after_rate_limits_is_a_429_with_retry_after_and_the_sdk_retries_into_success(cooling):
    s = cooling
    sim_rule(s, "sk-cool-", "ratelimited")  # both keys: 429 rate_limit_reached_error, Retry-After 2
    try:
        first = chat(s, "both keys over their tier")
        assert first.status == 429, first.text  # tried a, then b (each cools 2 s); the deadline allows no wait
        before = s.sim_stats()["chatRequests"]
        r = chat(s, "nothing may go upstream")
        # The pool rests after the upstream's rate limit: the upstream's own
        # answer, 429 with the soonest key's Retry-After (503 is for refused keys).
        assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 2, (r.status, r.text)
        assert r.json()["error"]["type"] == "rate_limit_reached_error"
        assert s.sim_stats()["chatRequests"] == before  # nothing was sent
        h = http("GET", s.base + "/health")
        assert h.status == 503 and h.json()["status"] == "unavailable" and len(h.json()["keys"]["cooling"]) == 2
        assert int(h.headers["Retry-After"]) >= 1
    finally:
        sim_rule(s, "sk-cool-", "")
    # The keys come back after their Retry-After; the SDK waits for it on the 429 and succeeds.
    client = openai.OpenAI(base_url=s.base + "/v1", api_key="x", max_retries=3)
    out = client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "back?"}])
    assert out.choices[0].message.content
    assert wait_for(lambda: http("GET", s.base + "/health").json()["status"] == "healthy", timeout=5)


def test_a_key_whose_endpoint_refuses_connections_fails_over_to_another_key():
    config = {"rateLimit": {"enabled": False},
              "upstream": {"keys": [{"key": "sk-fbt-" + "a" * 24, "name": "a", "baseURL": "http://127.0.0.1:9/v1"},
                                    {"key": "sk-fbt-" + "b" * 24, "name": "b"}],
                           "retries": 1, "retryBackoffMs": 20}}
    with make_stack("failover", workers=1, config=config) as s:
        # Key a's endpoint refuses connections: every request that picks it is retried on b.
        results = [chat(s, f"failover {i}") for i in range(20)]
        assert [r.status for r in results] == [200] * 20
        log = gateway_log(s, lambda t: "upstream-key=b" in t and "attempts=2" in t)


def test_a_key_that_does_not_answer_in_time_is_a_first_byte_timeout_retried_on_another_key():
    config = {"rateLimit": {"enabled": False},
              "upstream": {"keys": [{"key": "sk-slow-" + "a" * 24, "name": "slow", "weight": 1000},
                                    {"key": "sk-quick-" + "b" * 24, "name": "quick"}],
                           "retries": 1, "retryBackoffMs": 20, "firstByteTimeoutMs": 500}}
    with make_stack("first-byte", workers=1, config=config) as s:
        sim_rule(s, "sk-slow-", "hang")  # answers after 5 s
        start = time.time()
        results = [chat(s, f"slow or quick {i}", stream=i % 2 == 1) for i in range(6)]
        assert [r.status for r in results] == [200] * 6, [(r.status, r.text[:100]) for r in results]
        # At most one 0.5 s wait per request, never the 5 s answer.
        assert time.time() - start < 6 * 1.5
        log = gateway_log(s, lambda t: t.count(" access POST /v1/chat/completions ") >= 6)
        assert "upstream-key=quick" in log and "upstream-key=slow" not in log
        assert log.count("attempts=2") >= 5  # the slow key (weight 1000) is nearly always picked first
