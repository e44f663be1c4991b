"""Issue #12, section 1: the usage ledger loses nothing — every chat request
through nginx → 4 gateway processes is one row, the totals equal the usage
the clients were given, a client that leaves mid-stream is an estimated
`client_left` row, and a worker SIGKILLed under load loses no row of a
request that got its 200."""
from __future__ import annotations

import http.client as httpclient
import json
import os
import signal
import threading
import time
import uuid

import kimistack
import openai
import pytest

from conftest import http, ledger_rows, make_stack, wait_for


rows = ledger_rows


@pytest.fixture(scope="module")
def ledger_stack():
    with make_stack("ledger", workers=4, config={"rateLimit": {"enabled": False}}) as s:
        yield s


def test_every_request_is_one_row_and_the_totals_equal_what_clients_were_told(ledger_stack):
    s = ledger_stack
    tag = uuid.uuid4().hex[:8]
    client = openai.OpenAI(base_url=s.base + "/v1", api_key="x", max_retries=0)
    told = 0
    ids = []
    for i in range(12):
        prompt = f"{tag} question {i} [sim:tokens={3 + i}]"
        if i % 3 == 0:
            c = client.chat.completions.with_raw_response.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": prompt}])
            ids.append(c.headers["x-request-id"])
            told += c.parse().usage.total_tokens
        elif i % 3 == 1:
            r = http("POST", s.base + "/api/chat/completion", body={"message": prompt})
            ids.append(r.headers["X-Request-Id"])
            told += r.json()["data"]["usage"]["total_tokens"]
        else:
            stream = client.chat.completions.with_raw_response.create(
                model="moonshot-v1-8k", stream=True, stream_options={"include_usage": True}, messages=[{"role": "user", "content": prompt}])
            ids.append(stream.headers["x-request-id"])
            told += [ch for ch in stream.parse() if ch.usage][-1].usage.total_tokens
    placeholders = ",".join("?" * len(ids))
    got = wait_for(lambda: (lambda r: r if len(r) == len(ids) else None)(rows(s, f"request_id IN ({placeholders})", ids)), 10)
    assert got and len(got) == 12, got
    assert sum(r["total_tokens"] for r in got) == told
    assert all(r["outcome"] == "completed" and r["estimated"] == 0 and r["status"] == 200 for r in got)
    assert {r["route"] for r in got} == {"/v1/chat/completions", "/api/chat/completion"}
    assert sum(r["stream"] for r in got) == 4 and all(r["first_token_ms"] is not None for r in got if r["stream"])
    assert all(r["key_name"] == "" and "x" not in r["key_fingerprint"] for r in got)  # no key configured, none stored


def test_a_client_that_leaves_mid_stream_is_an_estimated_client_left_row(ledger_stack):
    s = ledger_stack
    tag = "left-" + uuid.uuid4().hex[:8]
    conn = httpclient.HTTPConnection("127.0.0.1", s.ports["plain"], timeout=30)
    body = json.dumps({"model": "moonshot-v1-8k", "stream": True,
                       "messages": [{"role": "user", "content": f"long story [sim:tokens=200,delay=20,id={tag}]"}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    rid = r.getheader("X-Request-Id")
    events = kimistack.iter_sse_data(r.fp)
    for _ in range(6):
        next(events)
    conn.close()
    assert wait_for(lambda: s.sim_stats()["byId"].get(tag) == "client-left", 10)
    got = wait_for(lambda: rows(s, "request_id = ?", (rid,)), 10)
    assert got, "no row for the stream the client left"
    row = got[0]
    assert row["outcome"] == "client_left" and row["estimated"] == 1 and row["stream"] == 1
    assert 4 <= row["completion_tokens"] < 200 and row["prompt_tokens"] >= 1


def test_a_worker_killed_under_load_loses_no_row_of_a_request_that_got_its_200():
    # Journals are drained once a minute here, so the records of the worker
    # that is killed are certainly still in its journal: only the replay by
    # the worker that replaces it can store them.
    config = {"rateLimit": {"enabled": False}, "usage": {"drainIntervalMs": 60000}}
    with make_stack("ledger-kill", workers=2, supervised=True, config=config) as s:
        ok_ids: list[str] = []
        lock = threading.Lock()
        stop = time.time() + 4

        def load():
            while time.time() < stop:
                try:
                    r = http("POST", s.base + "/api/chat/completion", body={"message": "load [sim:tokens=3,delay=2]"}, timeout=10)
                except Exception:  # noqa: BLE001 - a connection cut by the kill
                    continue
                if r.status == 200:
                    with lock:
                        ok_ids.append(r.headers["X-Request-Id"])

        threads = [threading.Thread(target=load) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        victim = s.worker_pids()[0]
        journal = next((s.run / "journal").glob(f"journal-{victim}-*.log"))
        assert journal.stat().st_size > 0, "the victim has no journalled records: the test would prove nothing"
        os.kill(victim, signal.SIGKILL)
        for t in threads:
            t.join()
        assert len(ok_ids) > 50
        # The supervisor starts a new worker, which replays the dead one's journal and removes it.
        assert wait_for(lambda: not journal.exists(), 15), "the dead worker's journal was not replayed"
    # The survivors store their journals when they stop.
    stored = [r["request_id"] for r in rows(s)]
    assert not set(ok_ids) - set(stored), len(set(ok_ids) - set(stored))
    assert len(stored) == len(set(r["record_id"] for r in rows(s)))
