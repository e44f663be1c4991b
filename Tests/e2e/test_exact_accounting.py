"""Exact accounting through nginx and 4 gateway processes: budgets reserved
before the call hold under concurrency, the whole request (tools too) is
reserved under a token limit, every request that went upstream is one row
whatever happens to its process, stream deltas count in any JSON spelling,
and a client that leaves while nothing is written still stops the upstream."""
from __future__ import annotations

import http.client as httpclient
import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import kimistack
import pytest

from conftest import http, ledger_rows, make_stack, wait_for

DAY = "ea-day-" + "d" * 24
STREAMER = "ea-streams-" + "s" * 24
TOOLS = "ea-tools-" + "t" * 24
PLAIN = "ea-plain-" + "p" * 24
BUDGET = 600
TPM = 6000


rows = ledger_rows


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def accounting():
    config = {
        "rateLimit": {"enabled": True, "windowMs": 60000, "maxRequests": 1000000},
        "auth": {"required": True, "keys": [
            {"key": DAY, "name": "day", "budget": {"tokensPerDay": BUDGET}},
            {"key": STREAMER, "name": "streamer", "budget": {"tokensPerDay": BUDGET}},
            {"key": TOOLS, "name": "tools", "rateLimit": {"tokensPerMinute": TPM}},
            {"key": PLAIN, "name": "plain"},
        ]},
    }
    with make_stack("accounting", workers=4, config=config) as s:
        yield s


def test_a_daily_budget_holds_under_60_concurrent_requests_across_four_processes(accounting):
    s = accounting
    before = s.sim_stats()["chatRequests"]
    body = {"model": "moonshot-v1-8k", "max_tokens": 40,
            "messages": [{"role": "user", "content": "how much is left? [sim:tokens=40]"}]}
    with ThreadPoolExecutor(max_workers=60) as pool:
        results = list(pool.map(lambda _: http("POST", s.base + "/v1/chat/completions", body=body, headers=auth(DAY)), range(60)))
    ok = [r for r in results if r.status == 200]
    refused = [r for r in results if r.status == 429]
    assert len(ok) + len(refused) == 60, sorted({(r.status, r.text[:100]) for r in results})
    used = sum(r.json()["usage"]["total_tokens"] for r in ok)
    assert 0 < used <= BUDGET, (used, len(ok))
    assert used >= BUDGET - 2 * 60, used  # the budget is used, not refused early
    # Nothing refused went upstream; every refusal is the quota the SDKs know, naming the budget.
    assert s.sim_stats()["chatRequests"] - before == len(ok)
    for r in refused:
        e = r.json()["error"]
        assert e["code"] == "insufficient_quota" and "Daily token budget" in e["message"], e
        assert r.headers["x-should-retry"] == "false" and int(r.headers["Retry-After"]) >= 1
    # The ledger agrees with what the clients were told.
    assert wait_for(lambda: sum(r["total_tokens"] for r in rows(s, "key_name = 'day'")) == used, 10)


def test_a_daily_budget_holds_under_40_concurrent_streams(accounting):
    s = accounting
    before = s.sim_stats()["streamsStarted"]
    body = {"model": "moonshot-v1-8k", "max_tokens": 30, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "a short story [sim:tokens=30,delay=5,spelling=spaced]"}]}

    def one(_):
        r = http("POST", s.base + "/v1/chat/completions", body=body, headers=auth(STREAMER))
        if r.status != 200:
            return r.status, 0
        usage = [e["usage"] for e in kimistack.sse_events(r.body) if isinstance(e, dict) and e.get("usage") and not e.get("choices")]
        return 200, usage[-1]["total_tokens"]

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(one, range(120)))
    assert {st for st, _ in results} <= {200, 429}
    used = sum(t for _, t in results)
    started = s.sim_stats()["streamsStarted"] - before
    assert 0 < used <= BUDGET and started == sum(1 for st, _ in results if st == 200), (used, started)


def test_tools_count_against_the_token_limit(accounting):
    """20 KB of `tools` with a two-letter message and max_tokens 1: the
    reservation covers the tools, so the limit holds (it let 64× through
    when only the message text counted)."""
    s = accounting
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "d" * 1000,
                                               "parameters": {"type": "object", "properties": {}}}} for i in range(20)]
    body = {"model": "moonshot-v1-8k", "max_tokens": 1, "tools": tools, "messages": [{"role": "user", "content": "hi"}]}
    start = time.time()
    admitted = 0
    statuses = set()
    while time.time() - start < 4:
        r = http("POST", s.base + "/v1/chat/completions", body=body, headers=auth(TOOLS))
        statuses.add(r.status)
        if r.status == 200:
            admitted += r.json()["usage"]["total_tokens"]
    elapsed = time.time() - start
    assert statuses <= {200, 429} and 429 in statuses, statuses
    reservation = 6000  # more than any one of these requests reserves
    assert admitted <= TPM + TPM * elapsed / 60 + reservation, admitted


def test_the_larger_of_max_tokens_and_max_completion_tokens_is_reserved(accounting):
    s = accounting
    body = {"model": "moonshot-v1-8k", "max_completion_tokens": 1, "max_tokens": 32768, "messages": [{"role": "user", "content": "hi"}]}
    r = http("POST", s.base + "/v1/chat/completions", body=body, headers=auth(TOOLS))
    # 32,768 reserved: more than the key's 6,000 a minute, so it can never fit.
    assert r.status == 429 and r.headers["x-should-retry"] == "false", (r.status, r.text)


def left_after(s, key, path, body, events_before_leaving, tag):
    conn = httpclient.HTTPConnection("127.0.0.1", s.ports["plain"], timeout=30)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **auth(key)})
    r = conn.getresponse()
    assert r.status == 200, r.read()[:200]
    rid = r.getheader("X-Request-Id")
    events = kimistack.iter_sse_data(r.fp)
    for _ in range(events_before_leaving):
        next(events)
    conn.close()
    assert wait_for(lambda: s.sim_stats()["byId"].get(tag) == "client-left", 10), s.sim_stats()["byId"].get(tag)
    got = wait_for(lambda: rows(s, "request_id = ?", (rid,)), 10)
    assert got, "no row"
    return got[0]


@pytest.mark.parametrize("spelling", ["spaced", "random"])
def test_a_stream_left_after_40_deltas_in_any_spelling_is_charged_at_least_40(accounting, spelling):
    s = accounting
    tag = f"left40-{spelling}-" + uuid.uuid4().hex[:6]
    body = {"model": "moonshot-v1-8k", "stream": True,
            "messages": [{"role": "user", "content": f"long [sim:tokens=400,delay=15,spelling={spelling},id={tag}]"}]}
    row = left_after(s, PLAIN, "/v1/chat/completions", body, 41, tag)  # the role chunk, then 40 deltas
    assert row["outcome"] == "client_left" and row["estimated"] == 1
    assert row["completion_tokens"] >= 40, row
    assert row["first_token_ms"] is not None


def test_tool_call_deltas_count_for_a_stream_the_client_left(accounting):
    s = accounting
    tag = "lefttool-" + uuid.uuid4().hex[:6]
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]
    body = {"model": "moonshot-v1-8k", "stream": True, "tools": tools,
            "messages": [{"role": "user", "content": "x" * 300 + f" [sim:tool=search,delay=20,spelling=spaced,id={tag}]"}]}
    row = left_after(s, PLAIN, "/v1/chat/completions", body, 12, tag)
    assert row["completion_tokens"] >= 10 and row["first_token_ms"] is not None, row


def test_the_app_stream_stops_the_upstream_when_the_client_leaves_during_unrelayed_reasoning(accounting):
    """`/api/chat/stream` without `include: ["reasoning"]` writes nothing
    while the model reasons: the gateway looks at the connection instead of
    running the upstream to its end."""
    s = accounting
    tag = "leftreason-" + uuid.uuid4().hex[:6]
    conn = httpclient.HTTPConnection("127.0.0.1", s.ports["plain"], timeout=30)
    body = {"messages": f"think first [sim:reasoning=300,tokens=5,delay=20,id={tag}]", "model": "moonshot-v1-8k"}
    conn.request("POST", "/api/chat/stream", body=json.dumps(body), headers={"Content-Type": "application/json", **auth(PLAIN)})
    sock = conn.sock
    assert wait_for(lambda: s.sim_stats()["byId"].get(tag) == "streaming", 5)
    time.sleep(0.3)
    sock.close()
    conn.close()
    # 300 reasoning deltas at 20 ms are 6 s: cancelled well before.
    assert wait_for(lambda: s.sim_stats()["byId"].get(tag) == "client-left", 3), s.sim_stats()["byId"].get(tag)


def streams_in_flight(s, n: int, tokens: int, delay_ms: int) -> list[threading.Thread]:
    """`n` streams started and seen by the upstream; the threads end when
    the streams do (or are cut)."""
    tag = uuid.uuid4().hex[:8]
    before = s.sim_stats()["streamsStarted"]

    def stream(i):
        body = {"model": "moonshot-v1-8k", "stream": True,
                "messages": [{"role": "user", "content": f"{tag} {i} [sim:tokens={tokens},delay={delay_ms}]"}]}
        try:
            http("POST", s.base + "/v1/chat/completions", body=body, timeout=20)
        except Exception:  # noqa: BLE001 - a kill or a stop cuts it
            pass

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    assert wait_for(lambda: s.sim_stats()["streamsStarted"] - before >= n, 10)
    return threads


def test_workers_killed_mid_stream_leave_one_row_for_every_request_that_went_upstream():
    config = {"rateLimit": {"enabled": False}, "usage": {"drainIntervalMs": 100}}
    with make_stack("accounting-kill", workers=2, supervised=True, config=config) as s:
        before = s.sim_stats()["streamsStarted"]
        threads = streams_in_flight(s, 30, tokens=80, delay_ms=40)
        time.sleep(0.5)
        for pid in s.worker_pids():
            os.kill(pid, signal.SIGKILL)
        for t in threads:
            t.join()
        started = s.sim_stats()["streamsStarted"] - before
        # The restarted workers take the dead ones' journals and in-flight rows.
        got = wait_for(lambda: (lambda r: r if len(r) >= started else None)(rows(s, "route = '/v1/chat/completions'")), 15)
        assert got and len(got) == started, (len(got or []), started)
        assert len({r["record_id"] for r in got}) == started
        assert all(r["outcome"] == "interrupted" and r["estimated"] == 1 and r["total_tokens"] > 0 for r in got), \
            {r["outcome"] for r in got}


def test_hostile_usage_numbers_are_clamped_and_crash_nothing():
    """An upstream reporting 2^63-1 or -5,000,000 prompt tokens: the worker
    survives, the rows are clamped (and say so), a budget does not grow, and
    the reports still add up."""
    from bad_upstream import BadUpstream
    upstream = BadUpstream()
    key = "ea-hostile-" + "h" * 24
    admin = "ea-admin-" + "a" * 24
    config = {"upstream": {"baseURL": upstream.base, "apiKey": "sk-" + "x" * 40, "retries": 0},
              "rateLimit": {"enabled": False},
              "auth": {"required": True, "keys": [{"key": key, "name": "hostile", "budget": {"tokensPerDay": 1_000_000}},
                                                  {"key": admin, "name": "ops", "role": "admin"}]}}
    try:
        with make_stack("accounting-hostile", workers=1, simulator=False, config=config) as s:
            pid = s.gateway_pids()[0]
            for mode in ["negusage", "hugeusage", "negusage"]:
                r = http("POST", s.base + "/v1/chat/completions", headers=auth(key),
                         body={"model": "moonshot-v1-8k", "max_tokens": 10, "messages": [{"role": "user", "content": f"x [bad:{mode}]"}]})
                assert r.status == 200, r.text
            assert s.gateway_pids() == [pid] and kimistack.process_alive(pid)
            got = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(rows(s, "key_name = 'hostile'")), 10)
            assert got and all(r["clamped"] == 1 and 0 <= r["prompt_tokens"] <= 8192 + 10 for r in got), got
            mine = http("GET", s.base + "/api/usage", headers=auth(key)).json()["data"]
            assert 0 <= mine["today"]["totalTokens"] <= 3 * (8192 + 20), mine
            assert mine["budget"]["remainingToday"] <= 1_000_000  # never grown by a negative count
            report = http("GET", s.base + "/api/admin/usage?groupBy=key", headers=auth(admin))
            assert report.status == 200, report.text
    finally:
        upstream.close()


def test_streams_a_sigterm_drain_cuts_short_each_leave_a_row():
    config = {"rateLimit": {"enabled": False}, "server": {"drainTimeoutMs": 300}}
    with make_stack("accounting-drain", workers=2, config=config) as s:
        threads = streams_in_flight(s, 10, tokens=100, delay_ms=50)
        time.sleep(0.3)
        s.stop_gateway(signal.SIGTERM)
        for t in threads:
            t.join()
        got = rows(s, "route = '/v1/chat/completions'")
        assert len(got) == 10 and all(r["outcome"] == "interrupted" for r in got), [(r["outcome"]) for r in got]
