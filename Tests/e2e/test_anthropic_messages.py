"""Issue #30: Claude Code and the Anthropic SDKs on Kimi through the gateway —
the official `anthropic` Python SDK through nginx → gateway → the simulator's
Anthropic face, relayed natively (bytes unchanged, thinking signatures
intact), governed as the chat routes are."""
from __future__ import annotations

import hashlib
import http.client as httpclient
import json
import uuid

import anthropic
import pytest

from conftest import gateway_log, http, ledger_rows, make_stack, wait_for

CLAUDE = "claude-" + uuid.uuid4().hex
BUDGET = "budget-" + uuid.uuid4().hex
SLOW = "slow-" + uuid.uuid4().hex
MODEL = "kimi-k2.6"


@pytest.fixture(scope="module")
def stack():
    cfg = {"auth": {"required": True, "keys": [
        {"name": "claude", "key": CLAUDE},
        {"name": "budget", "key": BUDGET, "budget": {"tokensPerDay": 300}},
        {"name": "slow", "key": SLOW, "rateLimit": {"maxRequests": 2, "windowMs": 60000}}]},
        "rateLimit": {"enabled": True, "windowMs": 60000, "maxRequests": 100000}}
    with make_stack("anthropic", workers=2, config=cfg) as s:
        yield s


def client(stack, key=CLAUDE, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base, api_key=key, max_retries=0, timeout=60, **kw)


def signature(prompt: str) -> str:
    """The simulator's thinking signature for a prompt (base64 with `/`, `+`, `=`)."""
    return "EqQBCkYIBxgCKkD/" + hashlib.sha256(prompt.encode()).hexdigest()[:40] + "+sim/sig=="


def test_a_message_is_answered_with_kimis_answer_and_real_usage(stack):
    prompt = "Say hello [sim:tokens=7]"
    m = client(stack).messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt}])
    assert m.type == "message" and m.role == "assistant" and m.model == MODEL
    assert m.content[0].type == "text" and m.content[0].text == stack.sim_answer(prompt)
    assert m.usage.input_tokens > 0 and m.usage.output_tokens == 7 and m.stop_reason == "end_turn"


def test_a_stream_starts_with_the_real_input_tokens_and_its_deltas_add_up_to_the_answer(stack):
    prompt = "Stream to me [sim:tokens=12]"
    events = []
    with client(stack).messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt}]) as s:
        for e in s:
            events.append(e)
        final = s.get_final_message()
    start = next(e for e in events if e.type == "message_start")
    assert start.message.usage.input_tokens > 0  # Claude Code's context meter reads this
    assert start.message.usage.input_tokens == final.usage.input_tokens
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == stack.sim_answer(prompt) == final.content[0].text
    assert final.usage.output_tokens == 12 and events[-1].type == "message_stop"


def test_tools_come_back_as_tool_use_whole_and_streamed_in_input_json_deltas(stack):
    tools = [{"name": "grep", "description": "Search the code", "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]
    prompt = "find the router [sim:tool=grep]"
    m = client(stack).messages.create(model=MODEL, max_tokens=256, tools=tools, messages=[{"role": "user", "content": prompt}])
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "grep" and use.input == {"query": "find the router"} and m.stop_reason == "tool_use"
    with client(stack).messages.stream(model=MODEL, max_tokens=256, tools=tools, messages=[{"role": "user", "content": prompt}]) as s:
        pieces = [e.delta.partial_json for e in s if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = s.get_final_message()
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"query": "find the router"}
    assert next(b for b in final.content if b.type == "tool_use").input == {"query": "find the router"}


def test_thinking_blocks_keep_their_signature_byte_for_byte(stack):
    prompt = "Think first [sim:tokens=4,reasoning=3]"
    body = {"model": MODEL, "max_tokens": 512, "thinking": {"type": "enabled", "budget_tokens": 256},
            "messages": [{"role": "user", "content": prompt}]}
    m = client(stack).messages.create(**body)
    thinking = next(b for b in m.content if b.type == "thinking")
    assert thinking.signature == signature(prompt) and thinking.thinking
    with client(stack).messages.stream(**body) as s:
        sigs = [e.delta.signature for e in s if e.type == "content_block_delta" and e.delta.type == "signature_delta"]
    assert sigs == [signature(prompt)]
    # And the raw bytes, answer and stream alike: what the upstream wrote, in whatever
    # JSON spelling it chose (the simulator respells at random), byte for byte.
    for stream in (False, True):
        r = http("POST", stack.base + "/v1/messages", body={**body, "stream": stream},
                 headers={"x-api-key": CLAUDE, "anthropic-version": "2023-06-01"})
        assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == stack.sim_stats()["anthropicAnswerSHA256"]


def test_count_tokens_is_answered_from_kimis_tokenizer_where_the_upstream_has_none(stack):
    messages = [{"role": "user", "content": "How many tokens is this sentence? " * 20}]
    n = client(stack).messages.count_tokens(model=MODEL, messages=messages, system="Be brief.")
    assert n.input_tokens > 100
    assert "count=tokenizer" in gateway_log(stack, "count=tokenizer")
    with pytest.raises(anthropic.BadRequestError):
        client(stack).messages.count_tokens(model="not-a-kimi-model", messages=messages)


def test_the_model_list_takes_anthropics_shape_when_the_client_sends_anthropic_version(stack):
    models = client(stack).models.list()
    ids = [m.id for m in models.data]
    assert MODEL in ids and all(m.type == "model" and m.display_name for m in models.data)
    raw = http("GET", stack.base + "/v1/models", headers={"x-api-key": CLAUDE, "anthropic-version": "2023-06-01"}).json()
    assert raw["has_more"] is False and raw["first_id"] == ids[0] and raw["last_id"] == ids[-1]
    # Without the header it is OpenAI's list, as before.
    assert http("GET", stack.base + "/v1/models", headers={"Authorization": f"Bearer {CLAUDE}"}).json()["object"] == "list"


@pytest.mark.parametrize("case", ["no-key", "wrong-key", "bad-model", "no-max-tokens", "upstream-429", "upstream-529", "upstream-400"])
def test_each_error_class_reaches_the_sdk_in_anthropics_shape(stack, case):
    c = client(stack)
    msg = [{"role": "user", "content": "hi"}]
    if case == "no-key":  # the SDK will not send a request without a key: as curl would
        r = http("POST", stack.base + "/v1/messages", body={"model": MODEL, "max_tokens": 8, "messages": msg}, headers={"anthropic-version": "2023-06-01"})
        assert r.status == 401 and r.json() == {"type": "error", "error": {"type": "authentication_error", "message": r.json()["error"]["message"]}}
        return
    expected = {"wrong-key": anthropic.AuthenticationError,
                "bad-model": anthropic.BadRequestError, "no-max-tokens": anthropic.BadRequestError,
                "upstream-429": anthropic.RateLimitError, "upstream-529": anthropic.OverloadedError,
                "upstream-400": anthropic.BadRequestError}[case]
    before = stack.sim_stats()["anthropicRequests"]
    with pytest.raises(expected) as err:
        if case == "wrong-key":
            client(stack, "sk-wrong-" + uuid.uuid4().hex).messages.create(model=MODEL, max_tokens=8, messages=msg)
        elif case == "bad-model":
            c.messages.create(model="claude-opus-4", max_tokens=8, messages=msg)
        elif case == "no-max-tokens":
            c.post("/v1/messages", cast_to=object, body={"model": MODEL, "messages": msg})
        else:
            code = {"upstream-429": 429, "upstream-529": 503, "upstream-400": 400}[case]
            c.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": f"fail [sim:error={code}]"}])
    body = err.value.body
    assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"], body
    status = {"no-key": 401, "wrong-key": 401, "bad-model": 400, "no-max-tokens": 400,
              "upstream-429": 429, "upstream-529": 529, "upstream-400": 400}[case]
    assert err.value.status_code == status
    if case == "upstream-429":
        assert int(err.value.response.headers["retry-after"]) >= 1
    if case in ("wrong-key", "bad-model", "no-max-tokens"):
        assert stack.sim_stats()["anthropicRequests"] == before  # refused before the upstream


def test_the_request_limit_is_a_429_rate_limit_error_with_retry_after(stack):
    c = client(stack, SLOW)
    for _ in range(2):
        c.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi [sim:tokens=1]"}])
    with pytest.raises(anthropic.RateLimitError) as err:
        c.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi [sim:tokens=1]"}])
    assert err.value.body["error"]["type"] == "rate_limit_error" and int(err.value.response.headers["retry-after"]) >= 1


def test_every_call_is_a_ledger_row_and_budgets_reserve_before_the_call(stack):
    rid = "anth-" + uuid.uuid4().hex[:12]
    system = [{"type": "text", "text": "You are a coding agent. " * 40, "cache_control": {"type": "ephemeral"}}]
    m = client(stack).messages.create(model=MODEL, max_tokens=64, system=system, extra_headers={"X-Request-Id": rid},
                                      messages=[{"role": "user", "content": "hi [sim:tokens=5]"}])
    rows = wait_for(lambda: ledger_rows(stack, "request_id = ?", (rid,)), timeout=10)
    assert len(rows) == 1, rows
    row = rows[0]
    u = m.usage
    assert row["route"] == "/v1/messages" and row["model"] == MODEL and row["outcome"] == "completed"
    assert u.cache_read_input_tokens and u.cache_read_input_tokens > 0
    assert row["prompt_tokens"] == u.input_tokens + u.cache_read_input_tokens + (u.cache_creation_input_tokens or 0)
    assert row["cached_tokens"] == u.cache_read_input_tokens and row["completion_tokens"] == u.output_tokens == 5
    # A budget of 300 tokens a day: a request reserving more is refused, nothing upstream.
    before = stack.sim_stats()["anthropicRequests"]
    with pytest.raises(anthropic.RateLimitError) as err:
        client(stack, BUDGET).messages.create(model=MODEL, max_tokens=400, messages=[{"role": "user", "content": "hi"}])
    assert "budget" in err.value.body["error"]["message"] and stack.sim_stats()["anthropicRequests"] == before


def test_a_client_that_leaves_mid_stream_stops_the_upstream_and_is_charged_by_its_deltas(stack):
    """Charged its prompt as message_start reported it and a token per delta
    it was sent — never message_start's placeholder output count of 1."""
    tag, rid = "leave-" + uuid.uuid4().hex[:8], "left-" + uuid.uuid4().hex[:12]
    body = {"model": MODEL, "max_tokens": 400, "stream": True,
            "messages": [{"role": "user", "content": f"slow [sim:tokens=300,delay=15,id={tag}]"}]}
    host, port = stack.base.removeprefix("http://").split(":")
    conn = httpclient.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/v1/messages", body=json.dumps(body), headers={"x-api-key": CLAUDE, "Content-Type": "application/json", "X-Request-Id": rid})
    resp = conn.getresponse()
    assert resp.status == 200
    seen = b""
    while seen.count(b"event: content_block_delta") < 40:  # by event name: the data's JSON may be spelled any way
        piece = resp.read1(4096)
        assert piece, seen.decode()[-500:]
        seen += piece
    first = seen.decode().split("\n\n")[0]
    assert first.startswith("event: message_start\n"), first
    start = json.loads("\n".join(l[6:] for l in first.splitlines() if l.startswith("data: ")))
    conn.close()
    assert wait_for(lambda: stack.sim_stats()["byId"].get(tag) == "client-left", timeout=15), stack.sim_stats()["byId"].get(tag)
    row = wait_for(lambda: ledger_rows(stack, "request_id = ?", (rid,)), timeout=10)[0]
    assert row["outcome"] == "client_left" and row["estimated"] == 1, row
    assert row["prompt_tokens"] == start["message"]["usage"]["input_tokens"]
    assert 40 <= row["completion_tokens"] < 300, row


def test_a_stream_the_upstream_cuts_short_ends_with_an_error_event(stack):
    rid = "cut-" + uuid.uuid4().hex[:12]
    body = {"model": MODEL, "max_tokens": 200, "stream": True, "messages": [{"role": "user", "content": "long [sim:tokens=100,cut=40]"}]}
    r = http("POST", stack.base + "/v1/messages", body=body, headers={"x-api-key": CLAUDE, "X-Request-Id": rid})
    tail = r.body.decode().strip().split("\n\n")[-1]
    assert tail.startswith("event: error\ndata: "), tail
    assert json.loads(tail.split("data: ", 1)[1])["error"]["type"] == "api_error"
    row = wait_for(lambda: ledger_rows(stack, "request_id = ?", (rid,)), timeout=10)[0]
    assert row["outcome"] == "upstream_error"


# A request as Claude Code sends it (its headers, beta list, system blocks with
# cache_control, tools, metadata), replayed through the face.
CLAUDE_CODE_BODY = {
    "model": MODEL, "max_tokens": 32000, "stream": True,
    "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
               {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks.",
                "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>This is a reminder.</system-reminder>"},
        {"type": "text", "text": "list the files [sim:tokens=6]", "cache_control": {"type": "ephemeral"}}]}],
    "tools": [{"name": "Bash", "description": "Executes a given bash command", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"], "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#"}},
        {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}],
    "metadata": {"user_id": "user_abc_account__session_1234"},
    "temperature": 1,
}


def test_a_recorded_claude_code_request_is_relayed_byte_for_byte_with_its_headers(stack):
    session = str(uuid.uuid4())
    raw = json.dumps(CLAUDE_CODE_BODY, separators=(", ", ": ")).encode()  # spelled as the client spelled it
    headers = {"Authorization": f"Bearer {CLAUDE}", "Content-Type": "application/json", "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
               "x-claude-code-session-id": session, "User-Agent": "claude-cli/2.0.0 (external, cli)", "x-app": "cli",
               "X-Request-Id": "cc-" + session[:8]}
    r = http("POST", stack.base + "/v1/messages?beta=true", body=raw, headers=headers)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream"), r.text[:300]
    events = [l.removeprefix("event: ") for l in r.body.decode().splitlines() if l.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    stats = stack.sim_stats()
    assert stats["anthropicBodySHA256"] == hashlib.sha256(raw).hexdigest()  # the bytes the client sent
    seen = stats["anthropicHeaders"]
    assert seen["anthropic-version"] == "2023-06-01" and seen["anthropic-beta"] == headers["anthropic-beta"]
    assert seen["x-claude-code-session-id"] == session
    # The upstream saw the pool's key, never the client's.
    assert seen["x-api-key-seen"] != "sha256:" + hashlib.sha256(CLAUDE.encode()).hexdigest()[:8]
    assert "sha256:" + hashlib.sha256(CLAUDE.encode()).hexdigest()[:8] not in stats["byKey"]
    line = gateway_log(stack, f"session={session}")
    assert "/v1/messages" in line and CLAUDE not in line
    row = wait_for(lambda: ledger_rows(stack, "request_id = ?", ("cc-" + session[:8],)), timeout=10)[0]
    assert row["session"] == session and row["route"] == "/v1/messages" and row["completion_tokens"] == 6


def test_another_keys_file_in_an_image_block_is_the_same_404_as_an_unknown_one(stack):
    boundary = "b" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nimage\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"pic.png\"\r\n\r\n"
            "not really a picture\r\n" f"--{boundary}--\r\n").encode()
    f = http("POST", stack.base + "/v1/files", body=body,
             headers={"x-api-key": CLAUDE, "Content-Type": f"multipart/form-data; boundary={boundary}"}).json()

    def ask(key, file_id):
        return http("POST", stack.base + "/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                    body={"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": [
                        {"type": "image", "source": {"type": "url", "url": f"ms://{file_id}"}},
                        {"type": "text", "text": "what is it? [sim:tokens=2]"}]}]})
    before = stack.sim_stats()["anthropicRequests"]
    theirs, unknown = ask(BUDGET, f["id"]), ask(BUDGET, "cn" + uuid.uuid4().hex)
    assert theirs.status == unknown.status == 404, theirs.text
    assert theirs.json()["error"]["type"] == unknown.json()["error"]["type"] == "not_found_error"
    assert stack.sim_stats()["anthropicRequests"] == before  # nothing went upstream
    assert ask(CLAUDE, f["id"]).status == 200
