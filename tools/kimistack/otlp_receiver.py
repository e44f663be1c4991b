"""An OTLP/HTTP trace receiver for tests: every POST to /v1/traces is decoded
with the official OpenTelemetry protobuf schema (the `opentelemetry-proto`
package), as binary protobuf or as OTLP/JSON, and its spans kept.

OTLP/JSON differs from protobuf's canonical JSON mapping in one place the
receiver must undo: trace and span ids are hex, not base64 (OTLP
specification, "JSON Protobuf Encoding"), as the OpenTelemetry Collector's
own decoder does.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from kimistack import wait_for


def _hex_ids_to_base64(doc):
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in span:
                        assert len(span[k]) in (16, 32) and span[k] == span[k].lower(), f"{k} {span[k]!r} is not lowercase hex"
                        span[k] = base64.b64encode(bytes.fromhex(span[k])).decode()
    return doc


def decode(body: bytes, content_type: str) -> trace_service_pb2.ExportTraceServiceRequest:
    msg = trace_service_pb2.ExportTraceServiceRequest()
    if content_type.startswith("application/x-protobuf"):
        msg.ParseFromString(body)
    elif content_type.startswith("application/json"):
        # Unknown fields are errors: a misspelt field fails the test.
        json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), msg)
    else:
        raise ValueError(f"unexpected Content-Type {content_type!r}")
    return msg


def value(any_value):
    """An AnyValue as Python."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


class Span:
    """One received span, with its resource, flattened for assertions."""

    def __init__(self, span, resource, scope, content_type):
        self.raw = span
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex()
        self.name = span.name
        self.kind = span.kind
        self.flags = span.flags
        self.start = span.start_time_unix_nano
        self.end = span.end_time_unix_nano
        self.attrs = {kv.key: value(kv.value) for kv in span.attributes}
        self.status_code = span.status.code
        self.status_message = span.status.message
        self.trace_state = span.trace_state
        self.resource = {kv.key: value(kv.value) for kv in resource.attributes}
        self.scope = scope.name
        self.content_type = content_type

    def __repr__(self):
        return f"Span({self.name!r} kind={self.kind} trace={self.trace_id} id={self.span_id} parent={self.parent_span_id})"


class Receiver:
    """`mode`: "ok" (200), "fail" (503), "hang" (answers after `hang_s`)."""

    def __init__(self, mode: str = "ok", hang_s: float = 30):
        self.mode, self.hang_s = mode, hang_s
        self.spans: list[Span] = []
        self.requests: list[dict] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ctype = self.headers.get("Content-Type", "")
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "bytes": len(body)})
                if receiver.mode == "hang":
                    time.sleep(receiver.hang_s)
                try:
                    msg = decode(body, ctype)
                except Exception as e:  # noqa: BLE001 - recorded; the tests check `errors`
                    with receiver.lock:
                        receiver.errors.append(repr(e))
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if receiver.mode == "ok":
                    with receiver.lock:
                        for rs in msg.resource_spans:
                            for ss in rs.scope_spans:
                                receiver.spans.extend(Span(s, rs.resource, ss.scope, ctype) for s in ss.spans)
                status = 503 if receiver.mode == "fail" else 200
                out = b"{}" if ctype.startswith("application/json") else trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def trace(self, trace_id: str, count: int, timeout: float = 10) -> list[Span]:
        """The spans of `trace_id` once there are at least `count`."""
        def got():
            with self.lock:
                found = [s for s in self.spans if s.trace_id == trace_id]
            return found if len(found) >= count else None
        found = wait_for(got, timeout=timeout, step=0.05)
        assert found, f"fewer than {count} spans of trace {trace_id} arrived: {[s for s in self.spans if s.trace_id == trace_id]}; errors {self.errors}"
        return found
