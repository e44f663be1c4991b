"""`make run`: the whole stack on this machine, in ./run/local, until Ctrl-C,
SIGTERM, or the terminal hanging up (SIGHUP).

With KIMI_API_KEY set, the gateway talks to the real Kimi API; without it,
to the project's simulator, and says so. HTTPS_PORT (8443) and HTTP_PORT
(8080) choose the ports; KIMISTACK_RUN_DIR the run folder (tests)."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from .stack import ROOT, PortTaken, Stack

PORT_VARIABLES = {"https": "HTTPS_PORT", "http": "HTTP_PORT"}


def say(text: str, err: bool = False) -> None:
    """Print, unless the terminal is gone (after SIGHUP a write fails with EIO)."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError:
        pass


def main() -> int:
    https_port = int(os.environ.get("HTTPS_PORT", "8443"))
    http_port = int(os.environ.get("HTTP_PORT", "8080"))
    key = os.environ.get("KIMI_API_KEY", "").strip()
    simulated = not key
    config: dict = {"upstream": {}}
    env = {}
    if simulated:
        config["upstream"]["simulated"] = True
    else:
        env["KIMI_API_KEY"] = key
        if os.environ.get("KIMI_BASE_URL"):
            env["KIMI_BASE_URL"] = os.environ["KIMI_BASE_URL"]
    for k in ("REQUIRE_API_KEY", "VALID_API_KEYS", "ALLOWED_ORIGINS", "RATE_LIMIT_WINDOW_MS", "RATE_LIMIT_MAX_REQUESTS"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    run_dir = Path(os.environ.get("KIMISTACK_RUN_DIR") or ROOT / "run" / "local")
    stack = Stack(
        run_dir, config=config, env=env, workers=2, supervised=True,
        simulator=simulated, sim_env={"KIMI_SIM_DELAY_MS": "40", "KIMI_SIM_TOKENS": "60"},
        ports={"https": https_port, "http": http_port})

    stop = {"signal": 0}

    def on_signal(sig, _frame):
        stop["signal"] = sig
    # Set before the start, so a hang-up during it still stops everything.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    leftovers = stack.stop_leftovers()
    if leftovers:
        say(f"make run: stopped {len(leftovers)} process(es) an earlier run in {run_dir} left running")
    try:
        stack.start()
    except PortTaken as e:
        say(f"make run: {e}. Stop it, or choose another port: make run {PORT_VARIABLES.get(e.name, e.name)}=<port>", err=True)
        return 1
    except Exception as e:  # noqa: BLE001 - shown to the user as is
        say(f"make run: could not start the stack: {e}", err=True)
        stack.stop()
        return 1
    line = "=" * 72
    say("\n".join([
        line,
        "kimi-gateway is running",
        f"  Test page (HTTPS, self-signed): https://localhost:{https_port}/",
        f"  Health:                          https://localhost:{https_port}/health",
        f"  OpenAI-compatible base URL:      https://localhost:{https_port}/v1",
        f"  App API:                         https://localhost:{https_port}/api/info",
        f"  Anthropic (Claude Code) base:    https://localhost:{https_port}  (ANTHROPIC_BASE_URL; trust {stack.cert} with NODE_EXTRA_CA_CERTS)",
        f"  HTTP (redirects to HTTPS):       http://localhost:{http_port}/",
        "  UPSTREAM: the Kimi API SIMULATOR (KIMI_API_KEY is not set): answers are simulated" if simulated
        else f"  Upstream: the Kimi API ({os.environ.get('KIMI_BASE_URL', 'https://api.moonshot.cn/v1')})",
        f"  Logs: {stack.run / 'logs'}    Config: {stack.config_path}",
        "  Ctrl-C (or closing the terminal) stops everything.",
        line,
    ]))
    while not stop["signal"]:
        time.sleep(0.2)
        if any(p.poll() is not None for p in stack.procs.values()):
            say("make run: a process of the stack exited; see the logs", err=True)
            break
    name = signal.Signals(stop["signal"]).name if stop["signal"] else "exit"
    say(f"stopping ({name})…")
    stack.stop()
    say("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
