"""Issue: the upstream client — TLS verification on, HTTP/2 where the upstream
offers it — against the simulator behind nginx over HTTPS + h2 with the run's
self-signed certificate."""
from __future__ import annotations

from conftest import http, make_stack


def tls_stack(name: str, trust: bool):
    s = make_stack(name, workers=1)
    up = {"baseURL": s.sim_tls_base, "apiKey": "sk-simulator-placeholder", "simulated": True}
    if trust:
        up["caFile"] = str(s.cert)  # the run's own certificate, made at start
    s.config = {"upstream": up}
    return s


def test_https_upstream_with_trusted_ca_speaks_http2():
    with tls_stack("tls-h2", trust=True) as s:
        r = http("POST", s.base + "/api/chat/completion", body={"message": "over h2 [sim:tokens=4]"})
        assert r.status == 200 and len(r.json()["data"]["message"].split()) == 4
        r = http("POST", s.base + "/api/chat/stream", body={"messages": "stream over h2 [sim:tokens=6]"})
        assert r.status == 200 and r.body.count(b'"content"') == 6 and r.body.endswith(b"data: [DONE]\n\n")
        proto = s.log("sim-tls-access").read_text().split()
        assert proto.count("HTTP/2.0") >= 2 and "HTTP/1.1" not in proto
        assert "upstream=h2" in s.log("gateway").read_text()


def test_untrusted_upstream_certificate_is_refused():
    with tls_stack("tls-untrusted", trust=False) as s:
        r = http("POST", s.base + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status == 502
        assert r.json()["error"]["message"].startswith("Cannot reach the upstream")
        # Nothing reached the simulator: the TLS handshake failed first.
        assert s.log("sim-tls-access").read_text().strip() == ""


def test_unreadable_ca_file_is_a_config_error(tmp_path):
    import subprocess
    import kimistack
    cfg = tmp_path / "c.json"
    cfg.write_text('{"upstream": {"caFile": "/nonexistent/ca.pem"}}')
    r = subprocess.run([str(kimistack.binary()), "check-config", "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1 and "upstream.caFile: cannot read /nonexistent/ca.pem" in r.stderr
