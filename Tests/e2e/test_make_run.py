"""`make run` (python3 -m kimistack.run) stops everything when its terminal
hangs up, cleans up after a run that was killed, and names a taken port."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import kimistack
import pytest

from conftest import RUNS, wait_for

RUN_DIR = RUNS / "make-run"


def start_make_run(https_port: int, http_port: int) -> subprocess.Popen:
    env = {**os.environ, "HTTPS_PORT": str(https_port), "HTTP_PORT": str(http_port),
           "KIMISTACK_RUN_DIR": str(RUN_DIR), "KIMI_API_KEY": "", "PYTHONPATH": str(kimistack.ROOT / "tools")}
    return subprocess.Popen([sys.executable, "-m", "kimistack.run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, text=True)


def wait_running(p: subprocess.Popen, timeout: float = 60) -> str:
    seen = ""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        seen += line
        if "kimi-gateway is running" in line:
            return seen
    pytest.fail(f"make run did not start:\n{seen}")


def stack_pids() -> list[int]:
    """Everything the run started: the recorded pids and the supervisor's workers."""
    pids = [int(x) for x in (RUN_DIR / "stack.pids").read_text().split()]
    for pid in list(pids):
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(x) for x in out.split()]
    return pids


def test_a_terminal_hang_up_stops_every_process_of_the_stack():
    https_port, http_port = kimistack.free_ports(2)
    p = start_make_run(https_port, http_port)
    try:
        wait_running(p)
        pids = stack_pids()
        assert len(pids) >= 5  # simulator, supervisor, 2 workers, nginx
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().status == 301  # nginx is up (and redirects to HTTPS)
        conn.close()
        p.send_signal(signal.SIGHUP)
        assert p.wait(timeout=60) == 0
        assert wait_for(lambda: not any(kimistack.process_alive(pid) for pid in pids), 20), \
            [pid for pid in pids if kimistack.process_alive(pid)]
        assert kimistack.is_free(https_port) and kimistack.is_free(http_port)
    finally:
        if p.poll() is None:
            p.kill()


def test_a_run_killed_outright_is_cleaned_up_by_the_next_one():
    https_port, http_port = kimistack.free_ports(2)
    first = start_make_run(https_port, http_port)
    wait_running(first)
    left = stack_pids()
    first.kill()  # no chance to stop anything: nginx, the gateway and the simulator keep running
    first.wait()
    assert any(kimistack.process_alive(pid) for pid in left)
    second = start_make_run(https_port, http_port)
    try:
        out = wait_running(second)
        assert "stopped" in out and "an earlier run" in out
        assert not any(kimistack.process_alive(pid) for pid in left)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    finally:
        if second.poll() is None:
            second.kill()


def test_a_taken_port_is_named_with_its_variable():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    https_port = taken.getsockname()[1]
    (http_port,) = kimistack.free_ports(1)
    try:
        p = start_make_run(https_port, http_port)
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 1
        assert f"port {https_port} (https) is already in use" in out and "HTTPS_PORT=" in out, out
    finally:
        taken.close()
