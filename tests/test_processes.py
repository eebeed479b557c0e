"""``python -m mimic_jax.train --processes 2``: two processes, one CPU device each (jax.distributed + gloo).

Three CLI runs share one module fixture (each process compiles its own programs: about 1-2 min per run here):
  two devices in one process, 2 iterations (the reference);
  two processes, 3 iterations, process 1 killed once checkpoint 1 exists;
  two processes resumed from that checkpoint 1 up to iteration 2.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import psutil
import pytest

from mimic_jax.checkpoint import load_run
from mimic_jax.motion.clip import save_clip

from test_checkpoint import TINY, standing_clip  # noqa: E402  (tests/ is on sys.path under pytest)

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--preset", "demo", "--checkpoint-every", "1"] + [x for s in TINY for x in ("--set", s)]


def _env(devices: int, cache: Path) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices),
            "JAX_COMPILATION_CACHE_DIR": str(cache)}


def _train(*args, devices: int, cache: Path, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "mimic_jax.train", *map(str, args)], cwd=ROOT,
                            env=_env(devices, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _kill_process_one(parent: subprocess.Popen, checkpoint: Path, timeout: float = 900) -> list:
    """SIGKILL to the child with process id 1 as soon as ``checkpoint`` exists; returns the children (none if
    the checkpoint never appeared)."""
    deadline = time.monotonic() + timeout
    while not checkpoint.is_dir():
        if parent.poll() is not None or time.monotonic() > deadline:
            return []
        time.sleep(0.05)
    children = psutil.Process(parent.pid).children()
    for child in children:
        if child.environ().get("MIMIC_JAX_PROCESS_ID") == "1":
            child.send_signal(signal.SIGKILL)
    return children


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("processes")
    clip, cache = root / "stand.npz", root / "cache"
    save_clip(clip, standing_clip())
    t0 = time.monotonic()
    one = _train("--motion-set", clip, "--iterations", 2, "--devices", 2, "--out", root / "one", *FLAGS,
                 devices=2, cache=cache)
    assert one.wait(900) == 0, one.stderr.read()[-3000:]
    group = _train("--motion-set", clip, "--iterations", 3, "--processes", 2, "--out", root / "group", *FLAGS,
                   devices=1, cache=cache)
    killed = _kill_process_one(group, root / "group" / "checkpoints" / "1")
    code, (_, killed_err) = group.wait(300), group.communicate()
    resumed = _train("--resume", root / "group" / "checkpoints" / "1", "--iterations", 2, "--processes", 2,
                     devices=1, cache=cache)
    assert resumed.wait(900) == 0, resumed.stderr.read()[-3000:]
    print(f"three runs: {time.monotonic() - t0:.0f} s")
    return root, killed, code, killed_err


def _records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _largest_difference(a, b) -> float:
    pairs = zip(jax.tree.leaves((a.params, a.normalizer)), jax.tree.leaves((b.params, b.normalizer)))
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in pairs)


@pytest.mark.slow
def test_killed_process_stops_the_group_with_one_line(runs):
    root, killed, code, err = runs
    assert len(killed) == 2, "checkpoint 1 never appeared"
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in killed)
    assert code == 1, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "process 1 of 2 stopped (killed by SIGKILL)" in lines[0], err[-3000:]
    assert f"last good checkpoint {root / 'group' / 'checkpoints'}" in lines[0] and "--resume" in lines[0], lines


@pytest.mark.slow
def test_two_processes_equal_two_devices_and_resume_exactly(runs):
    root = runs[0]
    one, group = _records(root / "one"), _records(root / "group")
    assert [r["iteration"] for r in group] == [1, 2]  # iteration 1 before the kill, iteration 2 after resume
    for a, b in zip(one, group):  # float sums in another order (gloo): tolerances, not equality
        assert a["total_loss"] == pytest.approx(b["total_loss"], abs=1e-4)
        assert a["rollout/reward_per_step"] == pytest.approx(b["rollout/reward_per_step"], abs=1e-6)
    for step in (1, 2):  # the killed run's checkpoint 1 and the resumed run's checkpoint 2
        a, b = load_run(root / "one" / "checkpoints" / str(step)), load_run(root / "group" / "checkpoints" / str(step))
        scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(a.params))
        assert (a.iteration, b.iteration) == (step, step)
        assert _largest_difference(a, b) < 1e-4 * max(scale, 1.0), step
    assert load_run(root / "group").meta["run"]["processes"] == 2
