"""The project's Python tooling: one stack (the simulator, the gateway under
spawn-fcgi, nginx, optionally lighttpd) for `make run`, the end-to-end tests
and the benchmarks, and the client helpers they share.

    stack   Stack, PortTaken, binary, public_dir, render, render_text, process_alive
    ports   free_ports, is_free, holder
    client  http, Response, iter_sse_data, sse_data, sse_events, sim_answer, sim_stats, wait_for
    redisserver  RedisServer (the fleet's Redis for tests and the bench)
    otlp_receiver  Receiver (an OTLP/HTTP trace receiver for tests; import it by name: it needs opentelemetry-proto)
    run     `make run` (python3 -m kimistack.run)

On the path through `pythonpath` in pytest.ini and PYTHONPATH in the Makefile.
"""
from .client import Response, http, iter_sse_data, sim_answer, sim_stats, sse_data, sse_events, wait_for
from .ports import STACK_PORTS, free_ports, holder, is_free
from .redisserver import RedisServer
from .stack import CONF, ROOT, STATIC, PortTaken, Stack, binary, make_certificate, process_alive, public_dir, render, render_text, web_user

__all__ = [
    "Response", "http", "iter_sse_data", "sim_answer", "sim_stats", "sse_data", "sse_events", "wait_for",
    "STACK_PORTS", "free_ports", "holder", "is_free", "RedisServer",
    "CONF", "ROOT", "STATIC", "PortTaken", "Stack", "binary", "make_certificate", "process_alive", "public_dir", "render", "render_text", "web_user",
]
