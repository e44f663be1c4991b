"""HTTP and SSE from the client's side, for the tests and the benchmarks:
one small HTTP helper, one SSE reader, and the simulator's own answers."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import IO, Iterator


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
    """One request; any status is a Response (no exception for 4xx/5xx)."""
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


# SSE -----------------------------------------------------------------------
# The gateway writes one `data:` line per event (JSON never holds a newline),
# so a line reader is exact for what it sends.

def iter_sse_data(lines: IO[bytes] | Iterator[bytes]) -> Iterator[str]:
    """The `data:` payloads of a live stream, as they arrive (`[DONE]`
    included); `lines` is a file-like object's lines or any byte lines."""
    readline = getattr(lines, "readline", None)
    source = iter(readline, b"") if readline else lines
    for raw in source:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data: "):
            yield line[6:].decode("utf-8", "replace")


def sse_data(raw: bytes) -> list[str]:
    """The `data:` payloads of a whole stream."""
    return list(iter_sse_data(raw.splitlines(keepends=True)))


def sse_events(raw: bytes) -> list:
    """The events of a whole stream: JSON payloads decoded, `[DONE]` as is."""
    return [d if d == "[DONE]" else json.loads(d) for d in sse_data(raw)]


# The simulator -------------------------------------------------------------

def sim_answer(sim_base: str, prompt: str, model: str = "moonshot-v1-8k") -> str:
    """The simulator is deterministic: its non-stream answer to `prompt`,
    asked directly, is what a relayed answer must equal."""
    r = http("POST", sim_base + "/chat/completions", headers={"Authorization": "Bearer x"},
             body={"model": model, "messages": [{"role": "user", "content": prompt}]})
    return r.json()["choices"][0]["message"]["content"]


def sim_stats(sim_base: str) -> dict:
    return http("GET", sim_base.removesuffix("/v1") + "/sim/stats").json()


def wait_for(pred, timeout: float = 10, step: float = 0.05):
    """`pred()`'s first truthy value within `timeout`, else its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
