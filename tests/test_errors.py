"""Bad input and faults (issue 20): each ends in ONE ``error:`` line and exit 2, with nothing lost or half-written.

Most cases fail before anything is built (no MJX program is compiled); the checkpoint cases share one tiny
training run (``tiny_run``: 2 iterations, a checkpoint after each), made once in a subprocess.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mimic_jax import eval as evaluate
from mimic_jax import motions, train
from mimic_jax.checkpoint import CheckpointError, config_from_dict
from mimic_jax.motion.clip import save_clip

from test_checkpoint import standing_clip, tiny_config  # noqa: E402  (tests/ is on sys.path under pytest)
from test_formats import trajectory, write_beyondmimic, write_csv  # noqa: E402
# test_train's settings: the tiny run below is then test_train's first run, the same programs, which the later
# of the two reads from the session's compilation cache (conftest.py runs this file well before test_train).
from test_train import TINY_FLAGS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def screen_lines(text: str) -> list[str]:
    """What a terminal shows for ``text``: each line with its carriage returns applied, blank lines dropped."""
    shown = []
    for line in text.split("\n"):
        screen = ""
        for part in line.split("\r"):
            screen = part + screen[len(part):]
        if screen.strip():
            shown.append(screen.rstrip())
    return shown


def assert_one_error(captured: str, fragment: str) -> str:
    lines = screen_lines(captured)
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], captured
    return lines[0]


def readonly_place(tmp_path: Path) -> Path:
    """A directory this process cannot write in (as root, permissions do not stop writes: use /sys)."""
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("no read-only place for root on this machine")
        return Path("/sys")
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# -- motions import: data loss first ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from mimic_jax.assets import g1

    folder = tmp_path_factory.mktemp("inputs")
    model = g1.load_model()
    write_csv(folder / "walk.csv", *trajectory())
    write_beyondmimic(folder / "bm.npz", model, "isaac", *trajectory(fps=50.0))
    data = dict(np.load(folder / "bm.npz"))
    quats = data["body_quat_w"].copy()
    quats[:, 1:] = 0.0
    np.savez(folder / "zero_quats.npz", **{**data, "body_quat_w": quats})
    np.savez(folder / "scalar.npz", **{**data, "joint_pos": np.float64(0.5)})
    (folder / "nul.csv").write_bytes(b"\x00" * 256)
    (folder / "header.csv").write_text("x,y,z,qx,qy,qz,qw," + ",".join(f"j{i}" for i in range(29)) + "\n")
    return folder


@pytest.mark.parametrize("name", ["walk.csv", "bm.npz"])
def test_import_onto_itself_keeps_the_source(inputs, tmp_path, name, capsys):
    src = tmp_path / name
    shutil.copy(inputs / name, src)
    before = src.read_bytes()
    link = tmp_path / f"link_{name}"
    link.symlink_to(src)
    for out in (src, link):
        assert motions.main(["import", str(src), "--out", str(out)]) == 2
        assert_one_error(capsys.readouterr().err, "would replace the source")
    assert src.read_bytes() == before


def test_import_refuses_an_output_that_is_not_npz(inputs, tmp_path, capsys):
    out = tmp_path / "walk_out.csv"
    assert motions.main(["import", str(inputs / "walk.csv"), "--out", str(out)]) == 2
    assert_one_error(capsys.readouterr().err, "ends in .npz")
    assert not out.exists()


@pytest.mark.parametrize("name, flags, fragment", [
    ("nul.csv", [], "NUL bytes"),
    ("header.csv", [], "only a header"),
    ("walk.csv", ["--fps", "1e6"], "make 1 frame at 50 fps"),
    ("walk.csv", ["--fps", "1e-9"], "at most an hour"),
    ("scalar.npz", [], "joint_pos ()"),
    ("zero_quats.npz", [], "all-zero quaternions"),
])
def test_bad_import_is_one_line(inputs, tmp_path, capsys, name, flags, fragment):
    out = tmp_path / "clip.npz"
    assert motions.main(["import", str(inputs / name), "--out", str(out), *flags]) == 2
    line = assert_one_error(capsys.readouterr().err, fragment)
    assert name in line and "nan" not in line and not out.exists()


# -- command lines --------------------------------------------------------------------------------------
@pytest.mark.parametrize("main, argv", [
    (motions.main, ["import", "walk.csv"]),
    (motions.main, ["bogus"]),
    (train.main, ["--iterations", "many"]),
    (evaluate.main, []),
])
def test_usage_errors_are_one_line_with_a_hint(main, argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert_one_error(captured.err, "--help)")
    assert "usage:" not in captured.out + captured.err


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "stand.npz"
    save_clip(path, standing_clip())
    return path


@pytest.mark.parametrize("flags, fragment", [
    (["--set", "env.on_clip_end=explode"], "'explode' is not one of 'resample', 'truncate'"),
    (["--set", "ppo.num_envs=0"], "ppo.num_envs=0: must be >= 1"),
    (["--set", "ppo.num_minibatches=0"], "ppo.num_minibatches=0: must be >= 1"),
    (["--set", "ppo.gamma=1.5"], "must be >= 0 and <= 1"),
    (["--set", "ppo.learning_rate=nan"], "must be a finite number"),
    (["--out", "{file}"], "exists and is not a directory"),
    (["--out", "{readonly}/run"], "cannot write in"),
])
def test_bad_training_settings_fail_before_anything_is_built(clip_file, tmp_path, capsys, flags, fragment):
    (tmp_path / "file").write_text("not a directory")
    flags = [f.format(file=tmp_path / "file", readonly=readonly_place(tmp_path)) for f in flags]
    out = [] if "--out" in flags else ["--out", str(tmp_path / "run")]
    t0 = time.monotonic()
    assert train.main(["--motion-set", str(clip_file), *TINY_FLAGS, *out, *flags]) == 2
    assert_one_error(capsys.readouterr().err, fragment)
    assert time.monotonic() - t0 < 30 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("config, fragment", [
    ({"env": {"on_clip_end": "explode"}}, "env.on_clip_end: 'explode' is not one of"),
    ({"ppo": {"num_minibatches": 0}}, "ppo.num_minibatches: must be >= 1"),
    ({"sampler": {"uniform_mix": 2.0}}, "sampler.uniform_mix: must be >= 0 and <= 1"),
])
def test_stored_configs_get_the_same_checks(config, fragment):
    with pytest.raises(CheckpointError, match=fragment):
        config_from_dict(config)


# -- checkpoints ------------------------------------------------------------------------------------------
def _cli(*args, cache):
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mimic_jax.train", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def cache():
    return os.environ["JAX_COMPILATION_CACHE_DIR"]  # the session's (conftest.py)


@pytest.fixture(scope="module")
def tiny_run(clip_file, cache, tmp_path_factory):
    """A finished 2-iteration run with checkpoints 1 and 2 (compiles the training program once)."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    done = _cli("--motion-set", clip_file, "--iterations", 2, "--checkpoint-every", 1, "--out", run_dir,
                *TINY_FLAGS, cache=cache)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def _largest_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.slow
@pytest.mark.parametrize("item", ["carry", "manifest"])
def test_damaged_latest_checkpoint_is_one_line(run_copy, cache, item):
    """A whole process: the 'Event loop is closed' tracebacks of a failed restore also come at exit."""
    step = run_copy / "checkpoints" / "2"
    _truncate(_largest_file(step / "carry") if item == "carry" else step / "carry" / "manifest.ocdbt")
    done = _cli("--resume", run_copy, cache=cache)
    assert done.returncode == 2
    line = assert_one_error(done.stderr, "unreadable checkpoint")
    assert str(step) in line and "other checkpoints here: 1" in line


@pytest.mark.slow
def test_damaged_policy_file_in_eval_is_one_line(run_copy, capfd):
    _truncate(_largest_file(run_copy / "checkpoints" / "2" / "policy"))
    assert evaluate.main(["--run", str(run_copy), "--export-only", "--export-onnx", str(run_copy / "p.onnx")]) == 2
    assert_one_error(capfd.readouterr().err, "unreadable checkpoint")


@pytest.mark.slow
def test_resume_from_an_earlier_step_replaces_the_later_one(run_copy, cache):
    _truncate(_largest_file(run_copy / "checkpoints" / "2" / "carry"))
    done = _cli("--resume", run_copy / "checkpoints" / "1", cache=cache)
    assert done.returncode == 0 and "removed checkpoints 2, later than the resumed 1" in done.stderr, done.stderr
    again = _cli("--resume", run_copy, "--iterations", 2, cache=cache)  # the rewritten 2 restores
    assert again.returncode == 0 and "done: 2 iterations" in again.stdout, again.stderr[-3000:]


@pytest.mark.slow
def test_orphan_of_a_killed_save_is_removed_and_said(run_copy, capfd):
    orphan = run_copy / "checkpoints" / "3.orbax-checkpoint-tmp-1234567890"
    shutil.copytree(run_copy / "checkpoints" / "2", orphan)
    assert train.main(["--resume", str(run_copy)]) == 0
    assert not orphan.exists() and f"note: removed {orphan}" in capfd.readouterr().err


def fake_save(run_dir: Path, step: int) -> Path:
    """``save_run`` of a small made-up carry (no trainer, nothing compiled)."""
    import jax.numpy as jnp
    from flax import struct

    from mimic_jax import checkpoint as ckpt
    from mimic_jax.motion.library import build_library
    from mimic_jax.ppo.networks import NormalizerState, PPOParams

    @struct.dataclass
    class State:
        params: PPOParams
        normalizer: NormalizerState

    @struct.dataclass
    class Carry:
        train_state: State

    normalizer = NormalizerState(mean=jnp.zeros(3), std=jnp.ones(3), count=jnp.zeros(()),
                                 summed_variance=jnp.zeros(3))
    carry = Carry(State(PPOParams(policy={"w": jnp.ones((3, 2))}, value={"w": jnp.ones(3)}), normalizer))
    lib = build_library([standing_clip(1.0)], ["stand"])
    return ckpt.save_run(run_dir, carry, tiny_config(), ckpt.run_meta(lib, "stand.npz", step, step * 64))


def test_ctrl_c_waits_for_a_checkpoint_write(tmp_path, monkeypatch):
    """Two Ctrl-C 0.3 s apart inside a save: the step is written whole, then one KeyboardInterrupt."""
    import orbax.checkpoint as ocp

    real_save = ocp.CheckpointManager.save

    def interrupted_save(self, *args, **kwargs):
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        fake_save(tmp_path, step=3)
    from mimic_jax.checkpoint import read_meta

    assert read_meta(tmp_path)["iteration"] == 3
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["3"]


# -- noise ------------------------------------------------------------------------------------------------
def test_a_user_error_is_the_only_line(tmp_path):
    """A fresh process on a CPU: no "Failed to import warp" lines from MJX before the error."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mimic_jax.train", "--motion-set", "no_such_set",
                           "--out", str(tmp_path / "run")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_error(done.stderr, "unknown motion set 'no_such_set'")


def test_progress_bar_leftover_never_shares_the_error_line(clip_file, tmp_path, capfd, monkeypatch):
    """The second clip of a set is broken while the loading bar (longer than the error) stands at 50%."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # the bar is shown on terminals
    good = tmp_path / f"{'a_standing_clip_with_a_long_name_' * 5}.npz"
    shutil.copy(clip_file, good)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"\x00not a zip file")
    argv = ["--motion-set", f"{good},{broken}", "--out", str(tmp_path / "run"), *TINY_FLAGS]
    assert train.main(argv) == 2
    assert_one_error(capfd.readouterr().err, "broken.npz: not a readable .npz")
