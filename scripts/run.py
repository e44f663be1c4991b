"""`make run`: the whole stack on this machine, in ./run/local, until Ctrl-C.

With KIMI_API_KEY set, the gateway talks to the real Kimi API; without it,
to the project's simulator, and says so."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kimistack  # noqa: E402

HTTPS_PORT = int(os.environ.get("HTTPS_PORT", "8443"))
HTTP_PORT = int(os.environ.get("HTTP_PORT", "8080"))


def main() -> int:
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
    stack = kimistack.Stack(
        kimistack.ROOT / "run" / "local", config=config, env=env, workers=2, supervised=True,
        simulator=simulated, sim_env={"KIMI_SIM_DELAY_MS": "40", "KIMI_SIM_TOKENS": "60"},
        ports={"https": HTTPS_PORT, "http": HTTP_PORT})
    try:
        stack.start()
    except Exception as e:  # noqa: BLE001 - shown to the user as is
        print(f"make run: could not start the stack: {e}", file=sys.stderr)
        stack.stop()
        return 1
    line = "=" * 72
    print(line)
    print("kimi-gateway is running")
    print(f"  Test page (HTTPS, self-signed): https://localhost:{HTTPS_PORT}/")
    print(f"  Health:                          https://localhost:{HTTPS_PORT}/health")
    print(f"  OpenAI-compatible base URL:      https://localhost:{HTTPS_PORT}/v1")
    print(f"  App API:                         https://localhost:{HTTPS_PORT}/api/info")
    print(f"  HTTP (redirects to HTTPS):       http://localhost:{HTTP_PORT}/")
    if simulated:
        print("  UPSTREAM: the Kimi API SIMULATOR (KIMI_API_KEY is not set): answers are simulated")
    else:
        print(f"  Upstream: the Kimi API ({os.environ.get('KIMI_BASE_URL', 'https://api.moonshot.cn/v1')})")
    print(f"  Logs: {stack.run / 'logs'}    Config: {stack.config_path}")
    print("  Ctrl-C stops everything.")
    print(line, flush=True)
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"]:
        time.sleep(0.2)
        if any(p.poll() is not None for p in stack.procs.values()):
            print("make run: a process of the stack exited; see the logs", file=sys.stderr)
            break
    print("stopping…", flush=True)
    stack.stop()
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
