"""One device and two devices give the same update for the same global batch (two forced CPU devices),
resets included. Two processes against two devices: tests/test_processes.py (through the training CLI)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_one_vs_two_devices_same_update(tmp_path):
    env = dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu")
    script = Path(__file__).with_name("multidevice_check.py")
    two_devices = tmp_path / "two_devices.npz"
    out = subprocess.run([sys.executable, str(script), str(two_devices)], env=env, capture_output=True, text=True,
                         timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Per-device rollouts + SPMD update against one device (float32 sums in another order: tolerance relative
    # to the parameter scale), with resets inside the unroll: every environment restarted at least once.
    tol = 1e-4 * max(result["param_scale"], 1.0)
    assert result["resets_split"] >= 8 and result["resets_one"] == pytest.approx(result["resets_split"]), result
    assert result["split_vs_one"] < tol, result
    assert result["env_state_vs_one"] < 1e-5 and result["sampler_vs_one"] < 1e-6, result
    assert abs(result["loss_split"] - result["loss_one"]) < 1e-4, result
    assert result["reward_split"] == pytest.approx(result["reward_one"], abs=1e-6), result
    # The two devices' environments draw their own starts and reset noise (environment j of each device).
    assert all(result["differ_at_init"].values()) and all(result["differ_after"].values()), result
