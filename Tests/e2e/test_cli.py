"""The command line (swift-argument-parser): every command answers -h and
--help with exit 0, a wrong option is named, and hash-key reads a key from a
terminal without echoing it."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

import kimistack

COMMANDS = [[], ["serve"], ["simulate"], ["check-config"], ["hash-key"], ["keys"], ["keys", "create"], ["usage"], ["version"]]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    # No input given: an empty stdin, never the terminal the tests run from.
    return subprocess.run([str(kimistack.binary()), *args], input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "(none)")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help_that_exits_0(command, flag):
    r = run(*command, flag)
    assert r.returncode == 0, r.stderr
    assert "USAGE: kimi-gateway" in r.stdout


def test_serve_help_lists_its_options_and_does_not_start_serving():
    r = run("serve", "-h")
    for option in ["--config", "--workers", "--socket", "--socket-group", "--log-file"]:
        assert option in r.stdout
    assert "serving on" not in r.stderr


def test_version_flag_and_command_agree():
    assert run("--version").stdout == run("version").stdout != ""


@pytest.mark.parametrize("args, named", [
    (["serve", "--bogus"], "--bogus"),
    (["serve", "--workers", "99"], "--workers"),
    (["serve", "--workers"], "--workers"),
    (["simulate", "--socket-group", "www-data"], "--socket-group"),
    (["nope"], "nope"),
])
def test_usage_errors_name_the_option_and_exit_64(args, named):
    r = run(*args)
    assert r.returncode == 64 and named in r.stderr, r.stderr


def test_hash_key_from_an_argument_and_from_a_pipe():
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256("abc"), FIPS 180-4
    assert run("hash-key", "abc").stdout.strip() == expected
    assert run("hash-key", stdin="abc\n").stdout.strip() == expected
    assert run("hash-key", stdin="\n").returncode == 64


def test_hash_key_on_a_terminal_does_not_echo_the_key():
    key = "terminal-key-" + os.urandom(6).hex()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(kimistack.binary()), ["kimi-gateway", "hash-key"])
    seen = b""

    def read_until(predicate, timeout=10.0):
        nonlocal seen
        end = time.monotonic() + timeout
        while not predicate(seen) and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break

    read_until(lambda s: b"API key: " in s)
    assert b"API key: " in seen
    os.write(fd, key.encode() + b"\n")
    import hashlib
    digest = hashlib.sha256(key.encode()).hexdigest().encode()
    read_until(lambda s: digest in s)
    if digest not in seen:
        os.kill(pid, 9)  # never hang the suite: the assertion below says what went wrong
    os.waitpid(pid, 0)
    os.close(fd)
    assert digest in seen
    assert key.encode() not in seen  # the terminal never showed it
