"""Issue: streams arrive unbuffered through nginx, and a client that leaves
mid-stream makes the gateway drop the upstream transfer."""
from __future__ import annotations

import http.client
import json
import time
import uuid

import openai
from kimistack import iter_sse_data

from conftest import http as http_request, make_stack, wait_for


def open_stream(stack, prompt: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", stack.ports["plain"], timeout=30)
    body = json.dumps({"model": "moonshot-v1-8k", "stream": True, "messages": [{"role": "user", "content": prompt}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    return conn.getresponse()


def test_first_token_arrives_long_before_the_last_is_produced(stack):
    # 20 tokens, 100 ms apart: the last is produced ~1.9 s after the first.
    start = time.monotonic()
    r = open_stream(stack, "[sim:tokens=20,delay=100]")
    first = None
    for data in iter_sse_data(r.fp):
        if data == "[DONE]":
            break
        # Parsed, not matched on bytes: the simulator spells its JSON at random.
        if first is None and any(c.get("delta", {}).get("content") for c in json.loads(data).get("choices", [])):
            first = time.monotonic() - start
    total = time.monotonic() - start
    assert first is not None and total > 1.8
    assert first < total / 3, (first, total)


def test_client_disconnect_cancels_the_upstream_and_frees_the_worker(stack):
    tag = "cancel-" + uuid.uuid4().hex[:8]
    r = open_stream(stack, f"[sim:tokens=200,delay=50,id={tag}]")
    events = iter_sse_data(r.fp)
    for _ in range(3):
        next(events)
    r.close()  # the client leaves after a few events
    r.fp = None
    state = wait_for(lambda: stack.sim_stats()["byId"].get(tag) == "client-left", timeout=10)
    assert state, stack.sim_stats()["byId"].get(tag)
    # The gateway serves the next request, and its log says the client left.
    assert http_request("GET", stack.base + "/health").status == 200
    client = openai.OpenAI(base_url=stack.base + "/v1", api_key="x", max_retries=0)
    assert client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "next"}]).choices
    line = wait_for(lambda: [l for l in stack.log("gateway").read_text().splitlines() if " access " in l and "client-left" in l])
    assert line and all(l.count("client-left") == 1 for l in line), line


def test_openai_sdk_stream_closed_early_cancels_upstream(stack):
    tag = "sdk-" + uuid.uuid4().hex[:8]
    client = openai.OpenAI(base_url=stack.base + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="moonshot-v1-8k", stream=True,
                                            messages=[{"role": "user", "content": f"[sim:tokens=300,delay=30,id={tag}]"}])
    for i, _ in enumerate(stream):
        if i == 5:
            break
    stream.close()
    assert wait_for(lambda: stack.sim_stats()["byId"].get(tag) == "client-left", timeout=10)


def test_keep_alive_comments_during_upstream_silence():
    with make_stack("keepalive", workers=1, config={"upstream": {"keepAliveSeconds": 1}}) as s:
        # curl's idle callback runs "about once a second": a 4.5 s silence
        # guarantees two comments at a 1 s keep-alive interval.
        r = open_stream(s, "[sim:tokens=3,first=4500]")
        seen = []
        while True:
            line = r.fp.readline()
            if not line or line.startswith(b"data: [DONE]"):
                break
            seen.append(line)
        assert seen.count(b": keep-alive\n") >= 2


def test_upstream_idle_timeout_is_504():
    with make_stack("idle", workers=1, config={"upstream": {"idleTimeoutMs": 1000}}) as s:
        r = http_request("POST", s.base + "/v1/chat/completions",
                         body={"messages": [{"role": "user", "content": "[sim:hang=5000]"}]})
        assert r.status == 504 and r.json()["error"]["type"] == "timeout_error"


def test_upstream_unreachable_is_502():
    with make_stack("down", workers=1, simulator=False, upstream_base="http://127.0.0.1:9/v1",
                    config={"upstream": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "k"}}) as s:
        r = http_request("POST", s.base + "/api/chat/completion", body={"message": "hi"})
        assert r.status == 502 and r.json()["success"] is False
        # /v1/models falls back to the configured list.
        ids = [m["id"] for m in http_request("GET", s.base + "/v1/models").json()["data"]]
        assert "moonshot-v1-8k" in ids
