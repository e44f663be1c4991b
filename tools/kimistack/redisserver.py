"""A real redis-server (Debian's package) on a free loopback port, for the
fleet tests and the bench (issue #16): no persistence, its log in the run
folder, killed and restarted on the same port at will."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from .ports import free_ports


class RedisServer:
    def __init__(self, run: Path, password: str | None = None):
        self.run = Path(run)
        self.run.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Starts (again) on `port`. A restart can find the port briefly
        taken (the kernel may hand a just-freed port to an outgoing
        connection as its local port): redis-server exits, and is started
        again."""
        for _ in range(20):
            if self._spawn_and_wait():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not listen on {self.port}: {(self.run / 'redis.log').read_text()[-500:]}")

    def _spawn_and_wait(self) -> bool:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.run), "--logfile", str(self.run / "redis.log"), "--daemonize", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                if self.proc.poll() is not None:
                    return False
                time.sleep(0.02)
        self.kill()
        return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cli(self, *args: str) -> str:
        argv = ["redis-cli", "-p", str(self.port)]
        if self.password:
            argv += ["-a", self.password, "--no-auth-warning"]
        return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=10).stdout.strip()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
