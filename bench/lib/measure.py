"""Measurement tools: wrk (duration), ab (exact counts), and per-process figures from /proc."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "run" / "bench"
QUICK = os.environ.get("BENCH_QUICK") == "1"  # shorter runs while developing the bench itself
WRK_SECONDS = 4 if QUICK else 10


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wrk(url: str, seconds: int = WRK_SECONDS, conns: int = 32, threads: int = 2, script: str | None = None) -> dict:
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(ROOT / "bench" / "wrk" / script)]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 20 + 60).stdout

    def ms(v: str) -> float:
        n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
        return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
    lat = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": lat.get("50"), "p90_ms": lat.get("90"), "p99_ms": lat.get("99"),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
    }


class BenchError(RuntimeError):
    """A scenario that produced no figure: said as such, never turned into a ratio."""


def ratio(a, b, what: str) -> float:
    """a / b, or a BenchError when either figure is missing or zero (a clean
    clone once reported 0 ns and then crashed with ZeroDivisionError)."""
    if not a or not b:
        raise BenchError(f"{what}: no figure (got {a!r} and {b!r}); see the scenario's log above")
    return a / b


def best_of(fn, rounds: int = 2) -> dict:
    """The best of `rounds` runs that had no error: a run with a non-2xx answer
    (a forgotten limit's 429, a 502) or a socket error is not a figure."""
    runs = [fn() for _ in range(rounds)]
    clean = [r for r in runs if r["errors"] == 0]
    if not clean:
        raise BenchError(f"every run had errors ({[r['errors'] for r in runs]} non-2xx answers or socket errors)")
    return max(clean, key=lambda r: r["rps"])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the processes, every thread."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_split(pid: int) -> tuple[int, int]:
    """(sockets, everything else) open in a process."""
    sockets = other = 0
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{f}")
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            other += 1
    return sockets, other


def context_switches(pids: list[int]) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of the
    processes so far (/proc/<pid>/task/<tid>/status; a thread that has
    ended no longer counts, and the pools' threads do not end)."""
    vol = invol = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for line in text.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    return vol, invol


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def ab(url: str, n: int, body: bytes | None = None, conns: int = 16) -> None:
    """Exactly `n` requests (wrk runs for a duration, ab for a count)."""
    cmd = ["ab", "-q", "-k", "-n", str(n), "-c", str(conns)]
    if body is not None:
        f = RUNS / "ab-body.json"
        f.write_bytes(body)
        cmd += ["-p", str(f), "-T", "application/json"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=900).stdout
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if (failed and int(failed.group(1))) or non2xx:
        raise RuntimeError(f"ab reported failures:\n{out[-1500:]}")
