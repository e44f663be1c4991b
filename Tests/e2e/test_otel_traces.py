"""OpenTelemetry: GenAI traces of every request exported over OTLP/HTTP,
the client's trace continued to Kimi. Each stack exports to a real OTLP
receiver that decodes every payload with the official protobuf schema
(`opentelemetry-proto`), in both encodings."""
from __future__ import annotations

import json
import secrets
import time
import uuid

import anthropic
import openai
import pytest
from kimistack.otlp_receiver import Receiver

from conftest import gateway_log, http, make_stack, wait_for

KEY = "otel-client-" + "k" * 24
ADMIN = "otel-admin-" + "a" * 24
CONFIG = {"rateLimit": {"enabled": False},
          "auth": {"required": True, "keys": [{"key": KEY, "name": "team-otel"}, {"key": ADMIN, "name": "ops", "role": "admin"}]},
          "upstream": {"retries": 2, "retryBackoffMs": 5}}
SERVER, CLIENT = 2, 3  # Span.SpanKind
STATUS_ERROR = 2


def otel_env(receiver: Receiver, **more) -> dict:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "gateway-under-test", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e,team=a%2Cb",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20collector-token", **more}


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def chat(s, content: str, tp: str | None = None, **body):
    headers = {"Authorization": f"Bearer {KEY}"}
    if tp:
        headers["traceparent"] = tp
        headers["tracestate"] = "vendor=opaque"
    return http("POST", s.base + "/v1/chat/completions",
                {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": content}], **body}, headers=headers)


def metric(s, series: str) -> float:
    text = http("GET", s.base + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series))


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def ostack(receiver):
    with make_stack("otel", workers=2, config=CONFIG, env=otel_env(receiver)) as s:
        yield s


def test_a_chat_continues_the_clients_trace_with_a_server_and_a_genai_client_span(ostack, receiver):
    trace_id, parent, tp = traceparent()
    r = chat(ostack, "[sim:id=otel-one,tokens=7] hello", tp)
    assert r.status == 200, r.text
    answer = r.json()
    spans = receiver.trace(trace_id, 2)
    server = next(s for s in spans if s.kind == SERVER)
    client = next(s for s in spans if s.kind == CLIENT)
    # Parentage: the client's span → the gateway's server span → the attempt's client span.
    assert server.parent_span_id == parent and client.parent_span_id == server.span_id
    assert server.trace_state == "vendor=opaque"
    assert server.name == "POST /v1/chat/completions"
    assert server.attrs["http.request.method"] == "POST" and server.attrs["http.route"] == "/v1/chat/completions"
    assert server.attrs["http.response.status_code"] == 200
    assert server.attrs["kimi_gateway.key.name"] == "team-otel"
    assert server.attrs["kimi_gateway.request_id"] == r.headers["X-Request-Id"]
    # No secret anywhere: not the client's key, not the upstream's.
    for span in spans:
        assert KEY not in json.dumps(span.attrs) and "Bearer" not in json.dumps(span.attrs)
    assert server.flags & 0x300 == 0x300, "a remote parent is flagged as remote"
    # The GenAI client span (semantic-conventions-genai v0.1.0).
    assert client.name == "chat moonshot-v1-8k"
    a = client.attrs
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "moonshot_ai"
    assert a["gen_ai.request.model"] == "moonshot-v1-8k" and a["gen_ai.request.stream"] is False
    assert a["gen_ai.response.id"] == answer["id"] and a["gen_ai.response.model"] == answer["model"]
    assert a["gen_ai.response.finish_reasons"] == [c["finish_reason"] for c in answer["choices"]]
    assert a["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"]
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == ostack.ports["sim"]
    assert a["kimi_gateway.attempt"] == 1 and a["kimi_gateway.upstream_key"] == "key-1"
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a, "content only when captured"
    assert server.start <= client.start <= client.end <= server.end
    # Kimi got the client span's context.
    assert ostack.sim_stats()["traceparents"]["otel-one"] == [f"00-{trace_id}-{client.span_id}-01"]
    # The resource, the export's headers, the encoding.
    assert server.resource["service.name"] == "gateway-under-test"
    assert server.resource["deployment.environment.name"] == "e2e" and server.resource["team"] == "a,b"
    assert server.resource["service.version"]
    assert server.content_type == "application/x-protobuf"
    assert any(q["headers"].get("authorization") == "Bearer collector-token" and q["path"] == "/v1/traces" for q in receiver.requests)
    assert not receiver.errors


def test_an_answer_over_64_kib_gets_the_same_genai_facts(ostack, receiver):
    # A queued trace keeps an answer only up to 64 KiB; a larger one's facts
    # are read before the request ends. Both must say the same things.
    trace_id, _, tp = traceparent()
    r = chat(ostack, "[sim:id=otel-big,tokens=30000,spelling=spaced] a long one", tp, model="kimi-k2.6")
    assert r.status == 200, r.text[:300]
    assert len(r.body) > 64 * 1024
    answer = r.json()
    client = next(s for s in receiver.trace(trace_id, 2) if s.kind == CLIENT)
    a = client.attrs
    assert a["gen_ai.response.id"] == answer["id"] and a["gen_ai.response.model"] == answer["model"]
    assert a["gen_ai.response.finish_reasons"] == [c["finish_reason"] for c in answer["choices"]]
    assert a["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"] >= 30000
    assert a["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"]


def test_a_request_without_traceparent_starts_a_trace_and_kimi_gets_it(ostack, receiver):
    r = chat(ostack, "[sim:id=otel-root] hello")
    assert r.status == 200
    sent = wait_for(lambda: ostack.sim_stats()["traceparents"].get("otel-root"))
    version, trace_id, span_id, flags = sent[0].split("-")
    assert (version, flags) == ("00", "01") and int(trace_id, 16) != 0
    spans = receiver.trace(trace_id, 2)
    server = next(s for s in spans if s.kind == SERVER)
    client = next(s for s in spans if s.kind == CLIENT)
    assert server.parent_span_id == "" and client.span_id == span_id


def test_a_retried_request_has_one_client_span_per_attempt(ostack, receiver):
    trace_id, _, tp = traceparent()
    r = chat(ostack, "[sim:id=otel-retry,overloaded=1] hello", tp)
    assert r.status == 200, r.text
    spans = receiver.trace(trace_id, 3)
    server = next(s for s in spans if s.kind == SERVER)
    attempts = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.attrs["kimi_gateway.attempt"])
    assert [s.attrs["kimi_gateway.attempt"] for s in attempts] == [1, 2]
    assert all(s.parent_span_id == server.span_id for s in attempts)
    first, second = attempts
    assert first.attrs["error.type"] == "engine_overloaded" and first.status_code == STATUS_ERROR
    assert "error.type" not in second.attrs and second.attrs["gen_ai.response.id"] == r.json()["id"]
    assert "gen_ai.response.id" not in first.attrs
    # Each attempt told Kimi its own span.
    assert ostack.sim_stats()["traceparents"]["otel-retry"] == [f"00-{trace_id}-{a.span_id}-01" for a in attempts]


def test_an_unsampled_parent_exports_nothing_but_its_context_still_reaches_kimi(ostack, receiver):
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    r = chat(ostack, "[sim:id=otel-unsampled] hello", f"00-{trace_id}-{parent}-00")
    assert r.status == 200
    sent = ostack.sim_stats()["traceparents"]["otel-unsampled"]
    assert len(sent) == 1 and sent[0].startswith(f"00-{trace_id}-") and sent[0].endswith("-00")
    # A sampled request after it is exported; the unsampled one never is.
    sampled_trace, _, tp = traceparent()
    assert chat(ostack, "after", tp).status == 200
    receiver.trace(sampled_trace, 2)
    assert not [s for s in receiver.spans if s.trace_id == trace_id]


@pytest.mark.parametrize("bad", ["00-" + "0" * 32 + "-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                                 "garbage", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
def test_an_invalid_traceparent_starts_a_new_trace(ostack, receiver, bad):
    tag = "otel-bad-" + uuid.uuid4().hex[:8]
    r = http("POST", ostack.base + "/v1/chat/completions",
             {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": f"[sim:id={tag}] hi"}]},
             headers={"Authorization": f"Bearer {KEY}", "traceparent": bad})
    assert r.status == 200
    sent = ostack.sim_stats()["traceparents"][tag][0]
    assert sent.split("-")[1] not in bad.lower()
    spans = receiver.trace(sent.split("-")[1], 2)
    assert next(s for s in spans if s.kind == SERVER).parent_span_id == ""


def test_refusals_and_non_chat_routes_get_a_server_span_with_their_status(ostack, receiver):
    trace_id, _, tp = traceparent()
    r = http("POST", ostack.base + "/v1/chat/completions", {"model": "moonshot-v1-8k", "messages": []},
             headers={"Authorization": f"Bearer {KEY}", "traceparent": tp})
    assert r.status == 400
    (server,) = receiver.trace(trace_id, 1)
    assert server.kind == SERVER and server.attrs["http.response.status_code"] == 400
    assert server.status_code != STATUS_ERROR, "a 4xx is the client's error, not the server span's"
    time.sleep(0.3)
    assert [s.name for s in receiver.spans if s.trace_id == trace_id] == ["POST /v1/chat/completions"], "nothing went upstream"
    trace_id, _, tp = traceparent()
    assert http("GET", ostack.base + "/health", headers={"traceparent": tp}).status == 200
    (health,) = receiver.trace(trace_id, 1)
    assert health.name == "GET /health" and "kimi_gateway.key.name" not in health.attrs


def test_the_openai_sdk_stream_has_time_to_first_chunk_and_finish_reasons(ostack, receiver):
    trace_id, _, tp = traceparent()
    client = openai.OpenAI(base_url=ostack.base + "/v1", api_key=KEY, default_headers={"traceparent": tp})
    stream = client.chat.completions.create(model="moonshot-v1-8k", stream=True, max_tokens=50,
                                            messages=[{"role": "user", "content": "[sim:tokens=9,first=30] stream please"}])
    chunks = list(stream)
    ids = {c.id for c in chunks}
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    spans = receiver.trace(trace_id, 2)
    c = next(s for s in spans if s.kind == CLIENT)
    assert c.attrs["gen_ai.request.stream"] is True and c.attrs["gen_ai.request.max_tokens"] == 50
    assert c.attrs["gen_ai.response.id"] in ids
    assert c.attrs["gen_ai.response.finish_reasons"] == finish
    ttfc = c.attrs["gen_ai.response.time_to_first_chunk"]
    assert 0.02 <= ttfc <= (c.end - c.start) / 1e9
    assert c.attrs["gen_ai.usage.output_tokens"] > 0


def test_content_is_captured_only_when_asked_over_otlp_json(receiver):
    with Receiver() as rx, make_stack("otel-json", workers=1, config=CONFIG,
                                     env=otel_env(rx, OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
                                                  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")) as s:
        trace_id, _, tp = traceparent()
        client = openai.OpenAI(base_url=s.base + "/v1", api_key=KEY, default_headers={"traceparent": tp})
        text = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
            model="moonshot-v1-8k", stream=True, messages=[{"role": "system", "content": "be brief"},
                                                           {"role": "user", "content": "[sim:tokens=6] what is up"}]) if ch.choices)
        spans = rx.trace(trace_id, 2)
        assert all(sp.content_type == "application/json" for sp in spans)
        c = next(sp for sp in spans if sp.kind == CLIENT)
        inputs = json.loads(c.attrs["gen_ai.input.messages"])
        assert inputs == [{"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                          {"role": "user", "parts": [{"type": "text", "content": "[sim:tokens=6] what is up"}]}]
        outputs = json.loads(c.attrs["gen_ai.output.messages"])
        assert outputs[0]["role"] == "assistant" and outputs[0]["parts"][0]["content"] == text and text
        # The Anthropic face: its client span, in its dialect.
        trace_id, _, tp = traceparent()
        ac = anthropic.Anthropic(base_url=s.base, api_key=KEY, default_headers={"traceparent": tp})
        msg = ac.messages.create(model="moonshot-v1-8k", max_tokens=40, messages=[{"role": "user", "content": "hi from claude"}])
        spans = rx.trace(trace_id, 2)
        c = next(sp for sp in spans if sp.kind == CLIENT)
        assert c.name == "chat moonshot-v1-8k" and c.attrs["gen_ai.response.id"] == msg.id
        assert c.attrs["gen_ai.response.finish_reasons"] == [msg.stop_reason]
        assert json.loads(c.attrs["gen_ai.output.messages"])[0]["parts"][0]["content"] == msg.content[0].text
        assert s.sim_stats()["anthropicHeaders"]["traceparent"] == f"00-{trace_id}-{c.span_id}-01"
        assert not rx.errors


def test_a_dead_collector_costs_requests_nothing_and_drops_are_counted():
    with Receiver() as gone:
        endpoint = gone.endpoint  # a port nobody listens on once closed
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}
    with make_stack("otel-dead", workers=2, config=CONFIG, env=env) as s:
        statuses = [chat(s, f"dead collector {i}").status for i in range(10)]
        assert statuses == [200] * 10
        assert wait_for(lambda: metric(s, 'kimi_gateway_otel_spans_dropped_total{reason="export_failed"}') >= 20, timeout=10)
        assert metric(s, "kimi_gateway_otel_spans_exported_total") == 0
        assert "failed" in gateway_log(s, "otel: export of")


def test_a_hung_collector_is_bounded_by_the_queue_and_the_rest_are_counted():
    with Receiver(mode="hang", hang_s=20) as rx, make_stack(
            "otel-hung", workers=2, config=CONFIG,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "20", "OTEL_EXPORTER_OTLP_TIMEOUT": "15000",
                 "OTEL_BSP_MAX_QUEUE_SIZE": "4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"}) as s:
        n = 40
        statuses = [http("GET", s.base + "/health").status for _ in range(n)]
        assert statuses == [200] * n
        # Each of the 2 processes holds at most 4 queued + 2 being sent: the rest were dropped at once.
        dropped = wait_for(lambda: metric(s, 'kimi_gateway_otel_spans_dropped_total{reason="queue_full"}'), timeout=5)
        assert dropped >= n - 2 * (4 + 2), dropped
