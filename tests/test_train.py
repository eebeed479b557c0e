"""The training CLI: overrides, one-line user errors, a real run + resume, and a learning run.

The CLI runs are subprocesses sharing one JAX compilation cache, so only the first compiles the program.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mimic_jax.checkpoint import load_run
from mimic_jax.motion.clip import save_clip
from mimic_jax.presets import DEMO, FULL, SettingError, apply_settings
from mimic_jax.train import main, parse_args

from test_checkpoint import TINY, standing_clip  # noqa: E402  (tests/ is on sys.path under pytest)

ROOT = Path(__file__).resolve().parents[1]
# The tiny runs' settings: the robot starts on the reference (no reset noise, no pushes), exploration std 0.5
# and a small action-rate weight (with the published weights an untrained policy's per-step reward is negative).
RESET_FIELDS = ("pos_xy", "pos_z", "rot_roll_pitch", "rot_yaw", "lin_vel_xy", "lin_vel_z", "ang_vel_roll_pitch",
                "ang_vel_yaw", "joint_pos")
LEARNABLE = [f"env.reset.{k}=0" for k in RESET_FIELDS] + [
    "env.randomization.push.enabled=false", "env.rewards.action_rate_weight=-0.005", "ppo.init_std=0.5"]
TINY_FLAGS = ["--preset", "demo"] + [x for s in TINY + LEARNABLE for x in ("--set", s)]
STRAIGHT_ITERATIONS = 4
# No test here claims that the policy learns: at this size (8 environments x 8 steps, 300 iterations = 19k
# steps) the G1 with self-collisions does not reliably learn to stay up, and whether the figures rise depends
# on the machine's float rounding (2026-12-02, seven runs of seeds and settings: training episodes -15% to
# +41% longer, clean survival 53-84 steps after 300 iterations against 58-61 after one; falls per step flat;
# docs/benchmarks.md). 16+ environments hang JAX 0.10's CPU runtime. Learning is shown by the GPU runs of
# docs/benchmarks.md and, for the PPO update itself, by tests/test_ppo.py.


def test_overrides_are_parsed_by_field_type():
    cfg = apply_settings(DEMO.train, ["ppo.learning_rate=3e-4", "env.on_clip_end=truncate",
                                      "env.rewards.body_pos_sigma=0.2", "ppo.hidden_sizes=[16, 8]",
                                      "ppo.value_hidden_sizes=none", "env.noise.enabled=off", "seed=7"])
    assert (cfg.ppo.learning_rate, cfg.env.on_clip_end, cfg.env.rewards.body_pos_sigma) == (3e-4, "truncate", 0.2)
    assert (cfg.ppo.hidden_sizes, cfg.ppo.value_hidden_sizes, cfg.env.noise.enabled, cfg.seed) == ((16, 8), None,
                                                                                                   False, 7)
    with pytest.raises(SettingError, match=r"unknown setting 'ppo.learnin_rate' \(did you mean ppo.learning_rate"):
        apply_settings(cfg, ["ppo.learnin_rate=1"])
    with pytest.raises(SettingError, match="'many' is not a valid int"):
        apply_settings(cfg, ["ppo.num_envs=many"])
    with pytest.raises(SettingError, match="not one of 'failure', 'start'"):
        apply_settings(cfg, ["sampler.credit=end"])
    assert FULL.train.ppo.num_envs == 4096 and FULL.train.env.impl == "warp" and DEMO.train.env.impl == "jax"


def test_dotted_config_flags_are_settings():
    args = parse_args(["--motion-set", "x", "--ppo.learning-rate", "3e-4", "--ppo.hidden-sizes", "16", "8",
                       "--env.on-clip-end=truncate", "--set", "seed=3", "--env.rewards.action-rate-weight", "-0.2"])
    assert args.settings == ["ppo.learning_rate=3e-4", "ppo.hidden_sizes=16,8", "env.on_clip_end=truncate",
                             "env.rewards.action_rate_weight=-0.2", "seed=3"]
    cfg = apply_settings(DEMO.train, args.settings)
    assert (cfg.ppo.learning_rate, cfg.ppo.hidden_sizes, cfg.env.rewards.action_rate_weight) == (3e-4, (16, 8), -0.2)
    for argv, message in ((["--ppo.learning-rate"], "needs a value"), (["stray"], "unrecognized arguments: stray")):
        with pytest.raises(ValueError, match=message):
            parse_args(argv)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    save_clip(folder / "stand.npz", standing_clip())
    save_clip(folder / "lifted" / "stand.npz", standing_clip(lift=0.02))  # same clip name, other data
    return folder


@pytest.mark.parametrize("argv, message", [
    (["--motion-set", "no_such_set"], "unknown motion set 'no_such_set'"),
    (["--motion-set", "{stand}", "--set", "ppo.lr=1"], "unknown setting 'ppo.lr'"),
    (["--motion-set", "{stand}", "--set", "ppo.num_envs"], "--set expects key=value"),
    (["--resume", "{missing}"], "no such directory"),
    (["--motion-set", "{stand}", "--impl", "warp"], "--impl warp needs a GPU"),
    (["--motion-set", "{stand}", "--iterations", "0"], "--iterations must be positive"),
    (["--motion-set", "{stand}", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_user_errors_are_one_line(argv, message, clips, tmp_path, capsys):
    argv = [a.format(stand=clips / "stand.npz", missing=tmp_path / "nothing") for a in argv]
    assert main(argv + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err


def _cli(*args, cache):
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "mimic_jax.train", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def _records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def cache():
    return os.environ["JAX_COMPILATION_CACHE_DIR"]  # the session's (conftest.py)


@pytest.fixture(scope="module")
def resumed_run(clips, cache, tmp_path_factory):
    """2 iterations, then ``--resume`` to 4 in a second process."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    first = _cli("--motion-set", clips / "stand.npz", "--iterations", 2, "--checkpoint-every", 1, "--out", run_dir,
                 *TINY_FLAGS, cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["1", "2"]
    assert (run_dir / "learning_curve.png").stat().st_size > 0 and (run_dir / "tensorboard").is_dir()
    second = _cli("--resume", run_dir, "--iterations", 4, cache=cache)
    assert second.returncode == 0, second.stderr[-3000:]
    return run_dir, first.stdout + second.stdout


@pytest.mark.slow
def test_cli_run_and_resume(resumed_run, clips, capsys):
    run_dir, stdout = resumed_run
    assert "DEMO" in stdout and "resuming" in stdout and "done: 4 iterations" in stdout
    records = _records(run_dir)
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    assert [r["env_steps"] for r in records] == [64, 128, 192, 256]
    assert all("wall_s" in r and "reward/body_pos" in r and "sampler/stand/motion_probability" in r for r in records)
    run = load_run(run_dir)
    assert (run.iteration, run.env_steps, run.motion_names) == (4, 256, ("stand",))
    assert run.config.ppo.hidden_sizes == (32, 32) and run.meta["run"]["preset"] == "demo"
    assert main(["--resume", str(run_dir), "--motion-set", str(clips / "lifted" / "stand.npz")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1].split("\r")[-1]  # after the clip-loading progress bar
    assert last.startswith("error: ") and "fingerprint" in last and "Traceback" not in err


@pytest.fixture(scope="module")
def straight_run(clips, cache, tmp_path_factory):
    """The 4 iterations of ``resumed_run`` in one go."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    done = _cli("--motion-set", clips / "stand.npz", "--iterations", STRAIGHT_ITERATIONS, "--checkpoint-every",
                STRAIGHT_ITERATIONS, "--out", run_dir, *TINY_FLAGS, cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    return _records(run_dir), run_dir


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(resumed_run, straight_run):
    resumed = _records(resumed_run[0])
    keys = [k for k in resumed[0] if k not in ("wall_s", "perf/env_steps_per_s")]
    assert len(resumed) == len(straight_run[0]) == STRAIGHT_ITERATIONS
    for a, b in zip(resumed, straight_run[0]):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


