"""Issue: API keys, CORS, security headers and the shared rate limit, end to
end through nginx with spawn-fcgi -F 4."""
from __future__ import annotations

import hashlib
import http.client
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from conftest import gateway_log, http as req, make_stack

GOOD = "sk-test-" + uuid.uuid4().hex  # made at run time, never committed
LIMITED = "sk-limited-" + uuid.uuid4().hex

HELMET = {
    "content-security-policy": "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-frame-options": "SAMEORIGIN",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
}


@pytest.fixture(scope="module")
def secured():
    cfg = {
        "auth": {"required": True, "keys": [
            {"name": "web", "sha256": hashlib.sha256(GOOD.encode()).hexdigest()},
            {"name": "small", "key": LIMITED, "models": ["moonshot-v1-8k"], "rateLimit": {"windowMs": 600000, "maxRequests": 3}},
        ]},
        "cors": {"allowedOrigins": ["https://app.example.com"]},
        "rateLimit": {"windowMs": 900000, "maxRequests": 1000},
    }
    with make_stack("secured", workers=4, config=cfg) as s:
        yield s


def assert_helmet(headers):
    h = {k.lower(): v for k, v in headers.items()}
    for k, v in HELMET.items():
        assert h.get(k) == v, k
    assert "x-powered-by" not in h


# API keys ------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{"x-api-key": GOOD}, {"Authorization": f"Bearer {GOOD}"}])
def test_valid_key_in_both_header_styles(secured, headers):
    r = req("GET", secured.base + "/api/info", headers=headers)
    assert r.status == 200


@pytest.mark.parametrize("headers", [
    {}, {"x-api-key": ""}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"},
    {"x-api-key": GOOD + "x"}, {"x-api-key": GOOD[:-1]}, {"Authorization": f"Basic {GOOD}"},
    {"Authorization": f"Bearer {'k' * 3000}"},
])
def test_missing_empty_wrong_and_wrong_length_keys_are_401(secured, headers):
    r = req("GET", secured.base + "/api/chat/models", headers=headers)
    assert r.status == 401 and r.json()["success"] is False
    r = req("GET", secured.base + "/v1/models", headers=headers)
    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "invalid_authentication_error"


def test_openai_sdk_with_wrong_key_raises_authentication_error(secured):
    client = openai.OpenAI(base_url=secured.base + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    ok = openai.OpenAI(base_url=secured.base + "/v1", api_key=GOOD, max_retries=0)
    assert ok.chat.completions.create(model="moonshot-v1-8k", messages=[{"role": "user", "content": "hi"}]).choices


def test_health_and_preflight_need_no_key(secured):
    assert req("GET", secured.base + "/health").status == 200
    r = req("OPTIONS", secured.base + "/v1/chat/completions", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
    assert r.status == 204


@pytest.mark.parametrize("path", ["/health", "/health/", "//health", "/api/%2e%2e/health", "/health?x=/../v1/models"])
def test_every_spelling_of_health_is_open_and_unlimited(secured, path):
    """The route's access, not the string: `/health/` used to be 401 and limited."""
    r = req("GET", secured.base + path)
    assert r.status == 200 and r.json()["status"] == "healthy"
    assert "RateLimit" not in r.headers


@pytest.mark.parametrize("path", ["/api/info/", "//api/info", "/v1/%2e%2e/api/info", "/api/./info"])
def test_every_spelling_of_a_client_route_needs_the_key(secured, path):
    assert req("GET", secured.base + path).status == 401
    assert req("GET", secured.base + path, headers={"x-api-key": GOOD}).status == 200


def test_unknown_and_upper_case_paths_are_404_with_or_without_a_key(secured):
    for path in ["/HEALTH", "/Api/info", "/api/nope"]:
        assert req("GET", secured.base + path).status == 404
        assert req("GET", secured.base + path, headers={"x-api-key": GOOD}).status == 404


def test_per_key_models_and_limit(secured):
    h = {"x-api-key": LIMITED}
    r = req("POST", secured.base + "/api/chat/completion", body={"message": "hi", "model": "moonshot-v1-32k"}, headers=h)
    assert r.status == 400 and "not allowed" in r.json()["error"]
    r = req("POST", secured.base + "/api/chat/completion", body={"message": "hi"}, headers=h)
    assert r.status == 200 and r.headers["RateLimit-Policy"] == '"requests"; q=3; w=600'
    statuses = [req("GET", secured.base + "/api/chat/models", headers=h).status for _ in range(3)]
    assert statuses == [200, 429, 429]  # 3 per key: one chat above, one list, then refused


def test_logs_show_a_fingerprint_never_the_key(secured):
    req("GET", secured.base + "/api/info", headers={"x-api-key": GOOD})
    log = gateway_log(secured, "key=web(")
    assert GOOD not in log and LIMITED not in log
    assert "key=web(" + hashlib.sha256(GOOD.encode()).hexdigest()[:8] + ")" in log


# CORS ----------------------------------------------------------------------

def test_cors_allowed_origin_is_echoed_with_vary(secured):
    r = req("GET", secured.base + "/api/info", headers={"Origin": "https://app.example.com", "x-api-key": GOOD})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Origin" in r.headers["Vary"]
    exposed = r.headers["Access-Control-Expose-Headers"]
    assert "RateLimit" in exposed and "Retry-After" in exposed


def test_cors_disallowed_origin_gets_no_cors_headers(secured):
    r = req("GET", secured.base + "/api/info", headers={"Origin": "https://evil.example.com", "x-api-key": GOOD})
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_preflight_allowed(secured):
    r = req("OPTIONS", secured.base + "/api/chat/stream", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key"})
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allow_headers = r.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allow_headers and "authorization" in allow_headers and "x-api-key" in allow_headers
    assert int(r.headers["Access-Control-Max-Age"]) > 0


def test_preflight_from_disallowed_origin_is_403(secured):
    r = req("OPTIONS", secured.base + "/api/chat/stream", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    assert_helmet(r.headers)


def test_origin_with_crlf_never_reaches_a_header_or_the_log(secured):
    # nginx refuses raw CR/LF in headers, so the gateway socket is driven directly.
    from kimistack import fcgi_client
    status, headers, _ = fcgi_client.request(str(secured.gateway_sock), {
        "REQUEST_METHOD": "GET", "REQUEST_URI": "/health", "HTTP_ORIGIN": "https://app.example.com\r\nSet-Cookie: pwn=1",
        "REMOTE_ADDR": "127.0.0.1"})
    assert status == 200 and "set-cookie" not in headers and "access-control-allow-origin" not in headers
    assert "pwn=1" not in secured.log("gateway").read_text().replace("Set-Cookie:?pwn", "")


# Security headers ------------------------------------------------------------

def test_security_headers_on_200_404_and_sse(secured):
    h = {"x-api-key": GOOD}
    assert_helmet(req("GET", secured.base + "/health").headers)
    assert_helmet(req("GET", secured.base + "/api/nope", headers=h).headers)
    assert_helmet(req("GET", secured.base + "/api/info").headers)  # 401
    r = req("POST", secured.base + "/api/chat/stream", body={"messages": "hi [sim:tokens=2]"}, headers=h)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert_helmet(r.headers)


# The shared limiter ----------------------------------------------------------

def test_500_concurrent_requests_against_a_limit_of_50_across_4_processes():
    # 50 per hour: the next admission is 72 s away, far beyond the test's length.
    with make_stack("limit50", workers=4, config={"rateLimit": {"windowMs": 3600000, "maxRequests": 50}}) as s:
        assert len(s.gateway_pids()) == 4
        before = s.sim_stats()["chatRequests"]

        def one(i):
            c = http.client.HTTPConnection("127.0.0.1", s.ports["plain"], timeout=60)
            c.request("POST", "/api/chat/completion", body=json.dumps({"message": f"n{i} [sim:tokens=1]"}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            out = (r.status, dict(r.getheaders()), r.read())
            c.close()
            return out

        with ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(one, range(500)))
        ok = [r for r in results if r[0] == 200]
        limited = [r for r in results if r[0] == 429]
        assert len(ok) == 50 and len(limited) == 450, sorted({r[0] for r in results})
        for status, headers, body in limited:
            assert int(headers["Retry-After"]) >= 1
            assert headers["RateLimit-Policy"] == '"requests"; q=50; w=3600'
            assert headers["RateLimit"].startswith('"requests"; r=0; t=')
            assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Limit"] == "50"
            assert json.loads(body)["success"] is False
            assert_helmet(headers)
        # Remaining counts down from 49 to 0. (It is computed from each
        # request's own clock reading, so two racing requests may show the
        # same value; admission itself is exact, as counted above and below.)
        remaining = sorted(int(h["X-RateLimit-Remaining"]) for _, h, _ in ok)
        assert remaining[0] == 0 and remaining[-1] == 49 and all(0 <= r <= 49 for r in remaining)
        # Nothing refused went upstream.
        assert s.sim_stats()["chatRequests"] - before == 50


def test_rotating_x_forwarded_for_does_not_bypass_the_limit():
    with make_stack("xff", workers=4, config={"rateLimit": {"windowMs": 900000, "maxRequests": 5}}) as s:
        statuses = [req("GET", s.base + "/api/info", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status for i in range(12)]
        assert statuses.count(200) == 5 and statuses.count(429) == 7


def test_429_on_the_v1_face(secured):
    with make_stack("v1limit", workers=2, config={"rateLimit": {"windowMs": 60000, "maxRequests": 1}}) as s:
        client = openai.OpenAI(base_url=s.base + "/v1", api_key="x", max_retries=0)
        client.models.list()
        with pytest.raises(openai.RateLimitError) as e:
            client.models.list()
        assert e.value.body["type"] == "rate_limit_reached_error"
        assert int(e.value.response.headers["retry-after"]) >= 1
        assert_helmet(e.value.response.headers)


def test_health_is_not_limited():
    with make_stack("healthlimit", workers=1, config={"rateLimit": {"windowMs": 60000, "maxRequests": 1}}) as s:
        assert all(req("GET", s.base + "/health").status == 200 for _ in range(5))
        assert "RateLimit" not in req("GET", s.base + "/health").headers


def test_corrupt_limiter_file_is_recreated_and_logged():
    with make_stack("corrupt", workers=2, config={"rateLimit": {"windowMs": 60000, "maxRequests": 100}}) as s:
        assert req("GET", s.base + "/api/info").status == 200
        path = s.run / "ratelimit.bin"
        path.write_bytes(b"\xff" * 100)  # truncated and garbage
        import time
        time.sleep(1.2)  # each process re-validates its mapping once a second
        for _ in range(4):
            assert req("GET", s.base + "/api/info").status == 200
        assert path.stat().st_size == 64 + 65536 * 16
        assert "replacing it" in s.log("gateway").read_text()
