"""One device and two devices give the same update for the same global batch (two forced CPU devices)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_one_vs_two_devices_same_update():
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("multidevice_check.py")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Per-device rollouts + SPMD update, and the fused SPMD program, against one device (float32 sums
    # in another order: tolerance relative to the parameter scale).
    tol = 1e-4 * max(result["param_scale"], 1.0)
    assert result["split_vs_one"] < tol, result
    assert result["fused_vs_one"] < tol, result
    assert abs(result["loss_split"] - result["loss_one"]) < 1e-4, result
    assert result["reward_split"] == pytest.approx(result["reward_one"], abs=1e-6), result
