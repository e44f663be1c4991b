"""Start and stop the whole kimi-gateway stack in one run folder.

One implementation for `make run`, the end-to-end tests and the benchmarks:
a self-signed TLS certificate made at run time, the Kimi API simulator (a
FastCGI responder), the gateway under spawn-fcgi, nginx and optionally
lighttpd, all on free loopback ports, nothing written outside the run folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from . import client
from .ports import STACK_PORTS, free_ports, holder, is_free

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
STATIC = ROOT / "static"


def binary() -> Path:
    env = os.environ.get("KIMI_GATEWAY_BIN")
    if env:
        return Path(env)
    built = [p for p in (ROOT / ".build" / c / "kimi-gateway" for c in ("release", "debug")) if p.exists()]
    if not built:
        raise FileNotFoundError("kimi-gateway is not built: run `make build`")
    return max(built, key=lambda p: p.stat().st_mtime)  # the newest build, never a stale one


def web_user() -> str | None:
    """nginx and lighttpd drop to www-data when started as root; the FastCGI
    sockets (mode 0660) are then given to that group. None when not root."""
    return "www-data" if os.geteuid() == 0 else None


def public_dir(run: Path) -> Path:
    """Where the files the web server's user must reach live: the sockets, a
    copy of static/, the web servers' temp dirs and lighttpd's logs. As root,
    nginx and lighttpd workers run as www-data, which cannot traverse a
    checkout in a 0700 home directory (issue #9: `make run` from /root got a
    502): so as root they live under /run/kimistack/, one folder per run
    folder. Otherwise nobody changes user and the run folder serves."""
    if not web_user():
        return run
    return Path("/run/kimistack") / hashlib.sha1(str(run).encode()).hexdigest()[:16]


def render_text(template: Path, values: dict[str, str]) -> str:
    """`template` with every `{{NAME}}` filled in; an unfilled one is an error."""
    text = template.read_text()
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", str(v))
    if "{{" in text:
        start = text.index("{{")
        raise ValueError(f"unfilled placeholder in {template}: {text[start:start + 30]}")
    return text


def render(template: Path, out: Path, values: dict[str, str]) -> None:
    out.write_text(render_text(template, values))


def make_certificate(tls: Path) -> None:
    tls.mkdir(parents=True, exist_ok=True)
    if (tls / "cert.pem").exists():
        return
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem")],
        check=True, capture_output=True)
    os.chmod(tls / "key.pem", 0o600)


class PortTaken(RuntimeError):
    """A port the caller chose is in use: named, with its holder when known."""

    def __init__(self, name: str, port: int, by: str):
        self.name, self.port, self.by = name, port, by
        super().__init__(f"port {port} ({name}) is already in use" + (f" by {by}" if by else ""))


class Stack:
    """The processes of one run. Use as a context manager or call start/stop."""

    def __init__(self, run_dir: Path, *, config: dict | None = None, env: dict | None = None,
                 workers: int = 2, supervised: bool = False, lighttpd: bool = False,
                 simulator: bool = True, sim_env: dict | None = None, client_max_body: str = "4m", max_file_body: str = "100m",
                 nginx_workers: int = 1, extra_servers: str = "", access_log: bool = True,
                 upstream_base: str | None = None, ports: dict | None = None):
        self.run = Path(run_dir).resolve()
        self.config = config or {}
        self.env = env or {}
        self.workers = workers
        self.supervised = supervised
        self.use_lighttpd = lighttpd
        self.use_simulator = simulator
        self.sim_env = sim_env or {}
        self.client_max_body = client_max_body
        self.max_file_body = max_file_body
        self.nginx_workers = nginx_workers
        self.extra_servers = extra_servers
        self.access_log = access_log
        self.upstream_base = upstream_base
        self.procs: dict[str, subprocess.Popen] = {}
        names = STACK_PORTS
        self.ports = dict(zip(names, free_ports(len(names))))
        self.ports.update(ports or {})
        # Ports the caller chose (make run's HTTPS_PORT/HTTP_PORT): checked before start.
        self.chosen_ports = dict(ports or {})
        self.pub = public_dir(self.run)
        self.gateway_sock = self.pub / "gateway.sock"
        self.sim_sock = self.pub / "sim.sock"
        self.config_path = self.run / "gateway.json"

    # URLs
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['plain']}"

    @property
    def https_base(self) -> str:
        return f"https://localhost:{self.ports['https']}"

    @property
    def lighttpd_base(self) -> str:
        return f"http://127.0.0.1:{self.ports['lighttpd']}"

    @property
    def sim_base(self) -> str:
        return f"http://127.0.0.1:{self.ports['sim']}/v1"

    @property
    def sim_tls_base(self) -> str:
        """The simulator over HTTPS with HTTP/2, under the run's self-signed certificate."""
        return f"https://localhost:{self.ports['sim_tls']}/v1"

    def sim_stats(self) -> dict:
        """What the simulator saw (`GET /sim/stats`)."""
        return client.sim_stats(self.sim_base)

    def sim_answer(self, prompt: str) -> str:
        """The simulator's own answer to `prompt`: what a relayed one must equal."""
        return client.sim_answer(self.sim_base, prompt)

    @property
    def cert(self) -> Path:
        return self.run / "tls" / "cert.pem"

    def log(self, name: str) -> Path:
        if name.startswith("lighttpd"):
            return self.pub / "weblogs" / f"{name}.log"
        return self.run / "logs" / f"{name}.log"

    # Life cycle
    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_config(self, config: dict | None = None) -> None:
        cfg = json.loads(json.dumps(config if config is not None else self.config))
        up = cfg.setdefault("upstream", {})
        if self.use_simulator and "baseURL" not in up:
            up["baseURL"] = self.upstream_base or self.sim_base
            up.setdefault("apiKey", "sk-simulator-placeholder")
            up.setdefault("simulated", True)
        rl = cfg.setdefault("rateLimit", {})
        rl.setdefault("file", str(self.run / "ratelimit.bin"))
        cfg.setdefault("storage", {}).setdefault("database", str(self.run / "gateway.db"))
        cfg.setdefault("documents", {}).setdefault("cacheDir", str(self.run / "documents"))
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg, indent=2))
        os.replace(tmp, self.config_path)

    def start(self) -> None:
        self.stop_leftovers()
        for name, port in self.chosen_ports.items():
            if not is_free(port):
                raise PortTaken(name, port, holder(port))
        for d in (self.run, self.pub):
            if d.exists():
                shutil.rmtree(d)
        for d in ("logs", "nginx", "tls"):
            (self.run / d).mkdir(parents=True, exist_ok=True)
        for d in ("tmp", "weblogs"):
            (self.pub / d).mkdir(parents=True, exist_ok=True)
        static = STATIC
        if web_user():
            # Reachable by the web user: 0750 root:www-data on the way down;
            # lighttpd opens its logs and temp files after dropping to it.
            os.chmod(self.pub, 0o750)
            shutil.chown(self.pub, group=web_user())
            shutil.chown(self.pub / "tmp", user=web_user(), group=web_user())
            shutil.chown(self.pub / "weblogs", user=web_user(), group=web_user())
            static = self.pub / "static"
            shutil.copytree(STATIC, static)
        make_certificate(self.run / "tls")
        values = {
            "RUN": self.run, "CONF": CONF, "STATIC": static, "TMP": self.pub / "tmp", "WEBLOGS": self.pub / "weblogs",
            "GATEWAY_SOCK": self.gateway_sock, "SIM_SOCK": self.sim_sock,
            "HTTP_PORT": self.ports["http"], "HTTPS_PORT": self.ports["https"], "SIM_TLS_PORT": self.ports["sim_tls"],
            "PLAIN_PORT": self.ports["plain"], "SIM_PORT": self.ports["sim"],
            "LIGHTTPD_PORT": self.ports["lighttpd"], "CLIENT_MAX_BODY": self.client_max_body,
            "MAX_FILE_BODY": self.max_file_body,
            "NGINX_WORKERS": self.nginx_workers, "EXTRA_SERVERS": self.extra_servers,
            "ACCESS_LOG": f"{self.run}/logs/nginx-access.log" if self.access_log else "off",
            "NGINX_USER": f"user {web_user()};" if web_user() else "",
            "LIGHTTPD_USER": f'server.username = "{web_user()}"\nserver.groupname = "{web_user()}"' if web_user() else "",
        }
        render(CONF / "nginx" / "run.conf.template", self.run / "nginx" / "nginx.conf", values)
        render(CONF / "nginx" / "run-site.conf", self.run / "nginx" / "run-site.conf", values)
        if self.use_lighttpd:
            render(CONF / "lighttpd" / "run.conf.template", self.run / "lighttpd.conf", values)
        self.write_config()
        try:
            if self.use_simulator:
                self.start_simulator()
            self.start_gateway()
            self._spawn("nginx", ["nginx", "-p", str(self.run), "-c", str(self.run / "nginx" / "nginx.conf")])
            if self.use_lighttpd:
                self._spawn("lighttpd", ["lighttpd", "-D", "-f", str(self.run / "lighttpd.conf")])
            self.wait_ready()
        except BaseException:
            self.stop()  # nothing is left running after a failed start
            raise

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.log(name), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})}, start_new_session=True)
        self.procs[name] = p
        self._record_pids()
        return p

    @property
    def pids_file(self) -> Path:
        return self.run / "stack.pids"

    def _record_pids(self) -> None:
        """Every process this stack started, for `stop_leftovers` of a later
        start in the same run folder (a `make run` whose terminal went away
        before it could stop them)."""
        pids = [p.pid for p in self.procs.values()] + self.gateway_pids()
        self.pids_file.write_text(" ".join(str(p) for p in pids))

    def stop_leftovers(self, timeout: float = 15) -> list[int]:
        """Stops processes an earlier stack in this run folder left running
        (only those whose command line names this run's folders), and
        returns their pids."""
        try:
            pids = [int(x) for x in self.pids_file.read_text().split()]
        except (FileNotFoundError, ValueError):
            return []
        mine = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if str(self.run) in cmdline or str(self.pub) in cmdline:
                mine.append(pid)
                os.kill(pid, signal.SIGQUIT if "nginx" in cmdline.split(" ", 1)[0] else signal.SIGTERM)
        deadline = time.time() + timeout
        for pid in mine:
            while time.time() < deadline and process_alive(pid):
                time.sleep(0.05)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        return mine

    def start_simulator(self) -> None:
        argv = [str(binary()), "simulate", "--socket", str(self.sim_sock)]
        if web_user():
            argv += ["--socket-group", web_user()]
        self._spawn("simulator", argv, env=self.sim_env)
        self._wait_for_socket(self.sim_sock)

    def gateway_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIMI_", "RATE_LIMIT_", "REQUIRE_API_KEY", "VALID_API_KEYS", "ALLOWED_ORIGINS"))}
        env.update(self.env)
        return env

    def start_gateway(self) -> None:
        """spawn-fcgi opens the unix socket (0660) and forks `workers` processes
        that inherit it as fd 0; with `supervised`, one `serve --workers N`
        parent restarts workers that die."""
        argv = ["spawn-fcgi", "-s", str(self.gateway_sock), "-M", "0660", "-P", str(self.run / "gateway.pid")]
        if web_user():
            argv += ["-G", web_user()]
        if self.supervised:
            argv += ["-n", "--", str(binary()), "serve", "--config", str(self.config_path), "--workers", str(self.workers),
                     "--log-file", str(self.log("gateway"))]
            self._spawn("gateway", argv, env=self.gateway_env())
        else:
            argv += ["-F", str(self.workers), "--", str(binary()), "serve", "--config", str(self.config_path),
                     "--log-file", str(self.log("gateway"))]
            log = open(self.log("gateway"), "ab")
            subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           env=self.gateway_env(), check=True)
            self._record_pids()
        self._wait_for_socket(self.gateway_sock)

    def gateway_pids(self) -> list[int]:
        if self.supervised:
            return [self.procs["gateway"].pid] if "gateway" in self.procs else []
        try:
            return [int(x) for x in (self.run / "gateway.pid").read_text().split()]
        except FileNotFoundError:
            return []

    def worker_pids(self) -> list[int]:
        """The processes that serve requests (children of the supervisor when supervised)."""
        pids = self.gateway_pids()
        if not self.supervised:
            return pids
        out = subprocess.run(["pgrep", "-P", str(pids[0])], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop_gateway(self, sig: int = signal.SIGTERM, timeout: float = 40) -> None:
        pids = self.gateway_pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        for pid in pids:
            while time.time() < deadline and process_alive(pid):
                time.sleep(0.05)
        if "gateway" in self.procs:
            try:
                self.procs.pop("gateway").wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        self.stop_gateway()
        try:
            self._stop_processes()
        finally:
            if self.pub != self.run:
                shutil.rmtree(self.pub, ignore_errors=True)

    def _stop_processes(self) -> None:
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
        for name, p in list(self.procs.items()):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()

    # Readiness
    def _wait_for_socket(self, path: Path, timeout: float = 15) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if path.exists():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{path} did not appear; see {self.run / 'logs'}")

    def wait_ready(self, timeout: float = 20) -> None:
        bases = [self.base] + ([self.lighttpd_base] if self.use_lighttpd else [])
        for base in bases:
            self.wait_url(base + "/health", timeout)

    def wait_url(self, url: str, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"{url} not ready: {last}; logs in {self.run / 'logs'}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
