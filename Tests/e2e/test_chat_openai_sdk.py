"""Issue: chat through the Kimi API, driven with the official openai SDK
(1.x) pointed at the gateway through real nginx, against the simulator."""
from __future__ import annotations

import openai
import pytest

from conftest import http


@pytest.fixture()
def client(stack):
    return openai.OpenAI(base_url=stack.base + "/v1", api_key="unused-by-this-stack", max_retries=0, timeout=30)


def test_create_non_stream(stack, client):
    prompt = "hello [sim:tokens=12]"
    c = client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": prompt}], temperature=0.3)
    assert c.choices[0].message.content == stack.sim_answer(prompt)
    assert c.usage.completion_tokens == 12 and c.usage.total_tokens > 12
    assert c.model == "moonshot-v1-8k"


def test_create_stream_assembles_the_simulators_text(stack, client):
    prompt = "stream please [sim:tokens=40]"
    stream = client.chat.completions.create(model="moonshot-v1-32k", messages=[{"role": "user", "content": prompt}],
                                            stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text == stack.sim_answer(prompt)
    assert usage is not None and usage.completion_tokens == 40  # hoisted from choices[0].usage


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "moonshot-v1-8k" in ids and "kimi-k3" in ids


def test_injected_429_raises_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "x [sim:error=429]"}])
    assert e.value.response.headers["retry-after"] == "2"
    assert e.value.body["type"] == "rate_limit_reached_error"


def test_injected_429_on_a_stream_raises_before_any_chunk(client):
    with pytest.raises(openai.RateLimitError):
        for _ in client.chat.completions.create(model="moonshot-v1-8k", stream=True,
                                                messages=[{"role": "user", "content": "x [sim:error=429]"}]):
            pass


def test_bad_request_raises_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "wizard", "content": "hi"}])
    assert "wizard" in e.value.message


def test_model_outside_allow_list_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "not allowed" in e.value.message


def test_upstream_auth_failure_is_502(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "x [sim:error=401]"}])
    assert e.value.status_code == 502 and e.value.body["message"] == "upstream authentication failed"


def test_upstream_5xx_is_502_and_keeps_the_type(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "x [sim:error=503]"}])
    assert e.value.status_code == 502 and e.value.body["type"] == "engine_overloaded_error"


def test_unknown_fields_pass_through(stack):
    # partial mode and an unknown field: accepted, forwarded, answered.
    r = http("POST", stack.base + "/v1/chat/completions", body={
        "messages": [{"role": "user", "content": "hi [sim:tokens=3]"}, {"role": "assistant", "content": "Sure", "partial": True}],
        "x_future_field": {"nested": [1, 2.50]}, "top_p": 0.9, "n": 1, "stop": ["\n\n"],
    })
    assert r.status == 200 and r.json()["object"] == "chat.completion"


def test_upstream_400_is_400_with_the_upstream_message(client, stack):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "x [sim:error=400]"}])
    assert e.value.body["message"] == "Invalid request: simulated bad request"
    assert e.value.body["type"] == "invalid_request_error"
    r = http("POST", stack.base + "/api/chat/completion", body={"message": "x [sim:error=400]"})
    assert r.status == 400 and r.json() == {"success": False, "error": "Invalid request: simulated bad request"}
