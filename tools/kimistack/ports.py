"""Loopback ports: free ones for a stack, and who holds a taken one."""
from __future__ import annotations

import re
import socket
import subprocess

STACK_PORTS = ("http", "https", "plain", "sim", "sim_tls", "lighttpd")


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports. All are held open until all are chosen:
    binding port 0 once per port can hand out the same port twice (seen: two
    server blocks on one port, and nginx refused the config)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx binds
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def holder(port: int) -> str:
    """Who listens on `port`, as `ss` tells it (e.g. `nginx pid 1234`), or
    an empty string when that cannot be known."""
    try:
        out = subprocess.run(["ss", "-H", "-ltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f"{m.group(1)} pid {m.group(2)}" if m else ""
