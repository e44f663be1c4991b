"""Issue: the JS SDK under Node's own test runner (`node --test`) against the
running stack: the three chat calls, errors, abort."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import ROOT


@pytest.mark.skipif(shutil.which("node") is None, reason="node is installed by make deps")
def test_sdk_under_node_test_runner(stack):
    env = {**os.environ, "KIMI_GATEWAY_URL": stack.base, "KIMI_SIM_URL": stack.sim_base.removesuffix("/v1")}
    r = subprocess.run(["node", "--test", "--test-reporter=spec", str(ROOT / "Tests" / "sdk" / "kimi-sdk.test.mjs")],
                       capture_output=True, text=True, env=env, timeout=120)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    import re
    tests = int(re.search(r"ℹ tests (\d+)", r.stdout).group(1))
    passed = int(re.search(r"ℹ pass (\d+)", r.stdout).group(1))
    assert tests >= 9 and passed == tests and "ℹ fail 0" in r.stdout
