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


def ledger_rows(stack, where="1=1", params=()) -> list[dict]:
    """The usage ledger's rows in a stack's database (none before it is migrated)."""
    import sqlite3
    db = sqlite3.connect(f"file:{stack.run / 'gateway.db'}?mode=ro", uri=True, timeout=5)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM usage WHERE {where}", params)]
    except sqlite3.OperationalError:
        return []  # not migrated yet
    finally:
        db.close()


# Kimi's JSON may be spelled with any whitespace and escapes: the tests'
# simulator answers in a random spelling unless a test asks for another, so
# no test passes only because the gateway agrees with one spelling.
SIM_SPELLING = {"KIMI_SIM_SPELLING": "random"}


def gateway_log(stack, until, timeout: float = 5) -> str:
    """The gateway's log once `until` (a string it must contain, or a
    predicate on its text) holds: access lines are written by each process's
    log thread (LogBuffer), a moment after the response."""
    path = stack.log("gateway")
    check = (lambda t: until in t) if isinstance(until, str) else until
    assert wait_for(lambda: path.exists() and check(path.read_text()), timeout=timeout), f"gateway log never had {until!r}"
    return path.read_text()


def make_stack(name: str, **kw) -> kimistack.Stack:
    kw["sim_env"] = {**SIM_SPELLING, **(kw.get("sim_env") or {})}
    return kimistack.Stack(RUNS / name, **kw)


@pytest.fixture(scope="session")
def stack():
    """The shared stack: nginx and lighttpd in front of spawn-fcgi -F 2."""
    # Tests here inject upstream errors ([sim:error=401], 429) that mark its
    # one key refused or cooling (issue #13): out for a second, no retries
    # (those have their own stacks in test_upstream_resilience.py).
    s = make_stack("shared", workers=2, lighttpd=True,
                   config={"rateLimit": {"enabled": False}, "upstream": {"retries": 0, "disabledKeySeconds": 1}})
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def shared_key_ready(request):
    """Before a test on the shared stack: its upstream key is back from
    whatever an earlier test's injected error did to it (cooling ends by
    itself; a refused key whose time is up is probed by the next request)."""
    if "stack" in request.fixturenames:
        s = request.getfixturevalue("stack")

        def ready():
            keys = http("GET", s.base + "/health").json().get("keys", {})
            return not keys.get("cooling") and all(k["retryInSeconds"] == 0 for k in keys.get("disabled", []))
        wait_for(ready, timeout=5, step=0.1)
    yield
