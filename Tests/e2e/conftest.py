"""Fixtures: real stacks (nginx, lighttpd, spawn-fcgi, the gateway and the
Kimi API simulator) on free loopback ports, each in its own run folder."""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import kimistack  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"
RUNS = ROOT / "run" / "tests"


def make_stack(name: str, **kw) -> kimistack.Stack:
    return kimistack.Stack(RUNS / name, **kw)


@pytest.fixture(scope="session")
def stack():
    """The shared stack: nginx and lighttpd in front of spawn-fcgi -F 2."""
    s = make_stack("shared", workers=2, lighttpd=True, config={"rateLimit": {"enabled": False}})
    s.start()
    yield s
    s.stop()


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 30) -> Response:
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def sim_stats(s: kimistack.Stack) -> dict:
    return http("GET", s.sim_base.replace("/v1", "") + "/sim/stats").json()


def wait_for(pred, timeout: float = 10, step: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
