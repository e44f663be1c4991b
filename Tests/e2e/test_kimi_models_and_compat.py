"""Issue #11, sections 1 and 4: every model the upstream lists works, and
the compatibility gaps real clients hit (OpenAI's stream usage, browser SDK
headers, `developer`, request ids, Node-era stream clients)."""
from __future__ import annotations

import http.client as httpclient
import json
import subprocess
import uuid

import kimistack
import openai
import pytest

from conftest import http, make_stack, wait_for


@pytest.fixture(scope="module")
def kimi():
    # A model the built-in table does not know, as if Kimi had just added it.
    with make_stack("surface", workers=2, sim_env={"KIMI_SIM_EXTRA_MODELS": "kimi-k9-preview"},
                    config={"rateLimit": {"enabled": False}}) as s:
        yield s


def client(stack, **kw):
    return openai.OpenAI(base_url=stack.base + "/v1", api_key="unused", max_retries=0, timeout=30, **kw)


def chat(stack, model, content="hi [sim:tokens=3]"):
    return http("POST", stack.base + "/v1/chat/completions", body={"model": model, "messages": [{"role": "user", "content": content}]})


# 1. Models --------------------------------------------------------------------

def test_every_model_the_upstream_lists_can_be_used(kimi):
    listed = [m.id for m in client(kimi).models.list()]
    for model in ["kimi-k2.5", "kimi-k2.6", "kimi-k3", "kimi-k2.7-code", "kimi-k9-preview", "moonshot-v1-128k"]:
        assert model in listed
        r = chat(kimi, model)
        assert r.status == 200, (model, r.text)
        assert r.json()["model"] == model


def test_the_three_lists_agree(kimi):
    v1 = [m["id"] for m in http("GET", kimi.base + "/v1/models").json()["data"]]
    app = [m["id"] for m in http("GET", kimi.base + "/api/chat/models").json()["data"]]
    info = [m["id"] for m in http("GET", kimi.base + "/api/info").json()["data"]["models"]]
    assert v1 == app == info and len(v1) == 13
    contexts = {m["id"]: m["context_length"] for m in http("GET", kimi.base + "/api/chat/models").json()["data"]}
    assert contexts["kimi-k2.6"] == 262144 and contexts["moonshot-v1-32k"] == 32768


def test_a_model_added_upstream_works_after_one_refresh_and_unknown_ones_do_not_hammer_it(kimi):
    assert chat(kimi, "moonshot-v1-8k").status == 200  # the list is cached now
    new = "kimi-k10-" + uuid.uuid4().hex[:6]
    assert http("POST", kimi.sim_base.removesuffix("/v1") + "/sim/models", body={"id": new}).status == 200
    before = kimi.sim_stats()["modelLists"]
    # Two processes: each refreshes once for the unknown model (at most once a minute).
    statuses = [chat(kimi, new).status for _ in range(6)]
    assert statuses == [200] * 6
    assert kimi.sim_stats()["modelLists"] - before <= 2
    before = kimi.sim_stats()["modelLists"]
    r = chat(kimi, "no-such-model")
    assert r.status == 400 and "not allowed" in r.json()["error"]["message"]
    for _ in range(4):
        assert chat(kimi, "no-such-model").status == 400
    assert kimi.sim_stats()["modelLists"] == before  # refreshed within the minute already


def test_configured_models_narrow_the_list():
    with make_stack("narrow", workers=1, config={"upstream": {"models": ["moonshot-v1-8k", "kimi-k2.6"]}}) as s:
        assert [m["id"] for m in http("GET", s.base + "/v1/models").json()["data"]] == ["moonshot-v1-8k", "kimi-k2.6"]
        assert chat(s, "kimi-k2.6").status == 200
        assert chat(s, "kimi-k3").status == 400


def test_a_reload_that_changes_the_configured_models_takes_effect_in_every_process():
    # The catalogue is built once per fetched list; a reload must still rebuild it.
    with make_stack("renarrow", workers=2, config={"upstream": {"models": ["moonshot-v1-8k", "kimi-k2.6"]}}) as s:
        for _ in range(4):
            assert chat(s, "moonshot-v1-32k").status == 400
        s.write_config({"upstream": {"models": ["moonshot-v1-32k", "kimi-k2.6"], "defaultModel": "kimi-k2.6"}})

        def everywhere():
            return all(chat(s, "moonshot-v1-32k").status == 200 for _ in range(6))
        assert wait_for(everywhere, timeout=6, step=0.3)
        assert chat(s, "moonshot-v1-8k").status == 400
        assert [m["id"] for m in http("GET", s.base + "/v1/models").json()["data"]] == ["moonshot-v1-32k", "kimi-k2.6"]


# 4. Compatibility --------------------------------------------------------------

def test_stream_usage_is_one_final_chunk_with_no_choices_like_openai(kimi):
    stream = client(kimi).chat.completions.create(
        model="moonshot-v1-8k", n=2, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count [sim:tokens=5]"}])
    chunks = list(stream)
    with_usage = [c for c in chunks if c.usage]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10


def test_without_include_usage_there_is_no_extra_chunk(kimi):
    stream = client(kimi).chat.completions.create(model="moonshot-v1-8k", stream=True,
                                                  messages=[{"role": "user", "content": "x [sim:tokens=3]"}])
    assert all(c.choices for c in stream)


def test_a_browser_preflight_with_the_openai_js_sdk_headers_from_vite(kimi):
    r = http("OPTIONS", kimi.base + "/v1/chat/completions", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-arch,x-stainless-lang,"
                                          "x-stainless-os,x-stainless-package-version,x-stainless-retry-count,"
                                          "x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout"})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    for h in ["x-stainless-retry-count", "x-stainless-timeout", "x-stainless-runtime-version", "authorization"]:
        assert h in allowed


def test_developer_role_and_an_empty_tool_result(kimi):
    c = client(kimi).chat.completions.create(model="moonshot-v1-8k", messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "call it"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""},
        {"role": "user", "content": "and? [sim:tokens=2]"}])
    assert c.choices[0].message.content


def test_the_request_id_goes_upstream_and_comes_back(kimi):
    rid = "rid-" + uuid.uuid4().hex[:12]
    tag = "rid" + uuid.uuid4().hex[:6]
    r = http("POST", kimi.base + "/v1/chat/completions", headers={"X-Request-Id": rid},
             body={"messages": [{"role": "user", "content": f"x [sim:tokens=2,id={tag}]"}]})
    assert r.status == 200 and r.headers["X-Request-Id"] == rid
    assert kimi.sim_stats()["requestIds"][tag] == rid


def node_era_client(stack, body) -> str:
    """What a client written for the Node.js backend does: every `data:` line
    before [DONE] is JSON.parse'd and its `content` appended (JavaScript
    appends "undefined" when there is none)."""
    conn = httpclient.HTTPConnection("127.0.0.1", stack.ports["plain"], timeout=30)
    conn.request("POST", "/api/chat/stream", body=json.dumps(body), headers={"Content-Type": "application/json"})
    text = ""
    for data in kimistack.iter_sse_data(conn.getresponse().fp):
        if data == "[DONE]":
            break
        obj = json.loads(data)
        text += obj["content"] if "content" in obj else "undefined"
    conn.close()
    return text


@pytest.mark.parametrize("model", ["moonshot-v1-8k", "kimi-k3"])
def test_a_node_era_stream_client_gets_exactly_the_answer_text(kimi, model):
    prompt = "tell me [sim:tokens=7]"
    expected = http("POST", kimi.sim_base + "/chat/completions", headers={"Authorization": "Bearer x"},
                    body={"model": model, "messages": [{"role": "user", "content": prompt}]}).json()["choices"][0]["message"]["content"]
    assert node_era_client(kimi, {"messages": prompt, "model": model}) == expected


def test_usage_and_reasoning_events_come_when_asked_for(kimi):
    r = http("POST", kimi.base + "/api/chat/stream",
             body={"messages": "think [sim:tokens=4]", "model": "kimi-k3", "include": ["usage", "reasoning"]})
    events = kimistack.sse_events(r.body)
    assert any("reasoning" in e for e in events if isinstance(e, dict))
    assert events[-2]["usage"]["completion_tokens"] > 0 and events[-1] == "[DONE]"
    bad = http("POST", kimi.base + "/api/chat/stream", body={"messages": "x", "include": ["everything"]})
    assert bad.status == 400 and "include" in bad.json()["error"]


def test_check_config_warns_when_no_upstream_key_is_set(tmp_path):
    cfg = tmp_path / "gateway.json"
    cfg.write_text("{}")
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(cfg)], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "warning: upstream.apiKey is not set" in r.stderr
    cfg.write_text(json.dumps({"cors": {"allowedOrigins": ["https://app.example.com/"]}}))
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(cfg)], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 1 and "no path, no trailing slash" in r.stderr


# 5. The simulator speaks what the gateway relays -----------------------------------

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "look it up",
                                             "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]


def test_tool_calls_pass_through_whole_and_streamed(kimi):
    c = client(kimi).chat.completions.create(model="kimi-k2.5", tools=TOOLS,
                                              messages=[{"role": "user", "content": "weather in Oslo [sim:tool=lookup]"}])
    call = c.choices[0].message.tool_calls[0]
    assert c.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"query": "weather in Oslo"}
    # Streamed: the arguments arrive in pieces across chunks and the SDK's deltas add up to them.
    stream = client(kimi).chat.completions.create(model="kimi-k2.5", tools=TOOLS, stream=True,
                                                   messages=[{"role": "user", "content": "weather in Oslo [sim:tool=lookup]"}])
    arguments, pieces, name = "", 0, None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name = name or tc.function.name
            if tc.function.arguments:
                arguments += tc.function.arguments
                pieces += 1
    assert name == "lookup" and pieces > 2 and json.loads(arguments) == {"query": "weather in Oslo"}


def test_json_mode_answers_a_json_object(kimi):
    c = client(kimi).chat.completions.create(model="moonshot-v1-8k", response_format={"type": "json_object"},
                                              messages=[{"role": "user", "content": "as json [sim:tokens=4]"}])
    assert list(json.loads(c.choices[0].message.content)) == ["answer"]
    stream = client(kimi).chat.completions.create(model="moonshot-v1-8k", response_format={"type": "json_object"}, stream=True,
                                                   messages=[{"role": "user", "content": "as json [sim:tokens=4]"}])
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert json.loads(text) == json.loads(c.choices[0].message.content)


def test_n_choices_and_reasoning_pass_through(kimi):
    c = client(kimi).chat.completions.create(model="kimi-k3", n=2,
                                              messages=[{"role": "user", "content": "think twice [sim:tokens=3]"}])
    assert [ch.index for ch in c.choices] == [0, 1]
    assert c.choices[0].message.model_extra.get("reasoning_content")


def test_reasoning_content_survives_tool_call_turns_in_the_app_history_and_kimis_rule_is_enforced(kimi):
    """With thinking on, Kimi refuses an assistant tool-call turn without its
    reasoning_content (the simulator enforces the rule); the app face's
    history carries it through unchanged, so the next turn is answered."""
    turn = [{"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": "", "reasoning_content": "I should look it up.",
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"query\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    r = http("POST", kimi.base + "/api/chat/history", body={"model": "kimi-k3", "messages": turn + [{"role": "user", "content": "so? [sim:tokens=3]"}]})
    assert r.status == 200, r.text
    assert r.json()["data"]["reasoning"]  # K3 always reasons
    stripped = [dict(m) for m in turn]
    del stripped[1]["reasoning_content"]
    for face, body in [("/v1/chat/completions", {"model": "kimi-k3", "messages": stripped}),
                       ("/api/chat/history", {"model": "kimi-k3", "messages": stripped})]:
        r = http("POST", kimi.base + face, body=body)
        assert r.status == 400 and "reasoning_content is missing in assistant tool call message at index 1" in r.text, (face, r.text)
    # Thinking off (kimi-k2.6 allows it): no reasoning needed.
    r = http("POST", kimi.base + "/v1/chat/completions", body={"model": "kimi-k2.6", "thinking": {"type": "disabled"}, "messages": stripped})
    assert r.status == 200, r.text
