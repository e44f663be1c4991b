"""Fixtures: real stacks (nginx, lighttpd, spawn-fcgi, the gateway and the
Kimi API simulator) on free loopback ports, each in its own run folder."""
from __future__ import annotations

from pathlib import Path

import kimistack
import pytest
from kimistack import http, wait_for  # noqa: F401 - the tests' helpers, from one place

ROOT = kimistack.ROOT

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
