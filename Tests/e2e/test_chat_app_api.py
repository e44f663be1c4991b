"""Issue: the app API (/api/chat/*) over HTTP through nginx, streams included."""
from __future__ import annotations

import json

from kimistack import http, sse_events


def test_completion(stack):
    r = http("POST", stack.base + "/api/chat/completion", body={"message": "hi [sim:tokens=6]", "system": "be brief", "temperature": 0.2})
    j = r.json()
    assert r.status == 200 and j["success"] is True
    assert len(j["data"]["message"].split()) == 6
    assert j["data"]["usage"]["completion_tokens"] == 6 and j["data"]["model"] == "moonshot-v1-8k"


def test_history(stack):
    r = http("POST", stack.base + "/api/chat/history", body={"messages": [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second [sim:tokens=4]"}],
        "model": "moonshot-v1-128k"})
    j = r.json()
    assert j["success"] is True and j["data"]["model"] == "moonshot-v1-128k" and len(j["data"]["message"].split()) == 4


def test_stream_events(stack):
    r = http("POST", stack.base + "/api/chat/stream", body={"messages": "tell me [sim:tokens=5]"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers["Cache-Control"] == "no-cache"
    ev = sse_events(r.body)
    # As the Node.js backend sent: content events and [DONE], nothing else.
    assert len(ev) == 6 and all("content" in e for e in ev[:-1]) and ev[-1] == "[DONE]"
    asked = sse_events(http("POST", stack.base + "/api/chat/stream",
                            body={"messages": "tell me [sim:tokens=5]", "include": ["usage"]}).body)
    assert asked[-2]["usage"]["completion_tokens"] == 5 and asked[-1] == "[DONE]"


def test_stream_error_after_headers_is_one_error_event(stack):
    r = http("POST", stack.base + "/api/chat/stream", body={"messages": "cut [sim:tokens=10,cut=3]"})
    ev = sse_events(r.body)
    assert [e["content"] for e in ev if "content" in e].__len__() == 3
    assert ev[-1] == {"error": "Upstream stream ended before [DONE]"}


def test_stream_upstream_error_before_headers_is_json(stack):
    r = http("POST", stack.base + "/api/chat/stream", body={"messages": "x [sim:error=500]"})
    assert r.status == 502 and r.json()["success"] is False


def test_models(stack):
    j = http("GET", stack.base + "/api/chat/models").json()
    assert j["success"] is True
    m = {x["id"]: x for x in j["data"]}
    assert m["moonshot-v1-8k"]["context_length"] == 8192 and m["moonshot-v1-8k"]["default"] is True


def upstream_calls_but_model_lists(stack) -> int:
    # An unknown model may refresh the model list once (issue #11); nothing else goes upstream.
    stats = stack.sim_stats()
    return stats["requests"] - stats["modelLists"]


def test_bad_inputs_are_400_and_nothing_goes_upstream(stack):
    before = upstream_calls_but_model_lists(stack)
    cases = [
        ("/api/chat/completion", b"not json"),
        ("/api/chat/completion", b"[1,2]"),
        ("/api/chat/completion", json.dumps({}).encode()),
        ("/api/chat/completion", json.dumps({"message": 42}).encode()),
        ("/api/chat/completion", json.dumps({"message": "   "}).encode()),
        ("/api/chat/completion", json.dumps({"message": "hi", "model": "nope"}).encode()),
        ("/api/chat/history", json.dumps({"messages": []}).encode()),
        ("/api/chat/history", json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode()),
        ("/api/chat/history", json.dumps({"messages": [{"role": "user", "content": ""}]}).encode()),
        ("/api/chat/stream", json.dumps({"messages": 7}).encode()),
        ("/api/chat/completion", json.dumps({"message": "hi", "max_tokens": 10 ** 9}).encode()),
        ("/api/chat/completion", b'{"message":"a","message":"b"}'),
    ]
    for path, body in cases:
        r = http("POST", stack.base + path, body=body)
        assert r.status == 400, (path, body, r.status)
        assert r.json()["success"] is False and r.json()["error"], body
    assert upstream_calls_but_model_lists(stack) == before
    assert http("GET", stack.base + "/health").status == 200


def test_stream_head_tells_nginx_not_to_buffer(stack):
    # nginx consumes X-Accel-Buffering, so it is checked at the FastCGI socket.
    from kimistack import fcgi_client
    body = json.dumps({"messages": "x [sim:tokens=2]"}).encode()
    status, headers, raw = fcgi_client.request(str(stack.gateway_sock), {
        "REQUEST_METHOD": "POST", "REQUEST_URI": "/api/chat/stream", "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1"}, body)
    assert status == 200 and headers["x-accel-buffering"] == "no" and "content-length" not in headers
    assert raw.endswith(b"data: [DONE]\n\n")
