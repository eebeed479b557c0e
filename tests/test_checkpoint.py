"""Checkpoints: config JSON round trip, exact resume, refusals, NaN handling, Ctrl-C (one tiny trainer)."""

import dataclasses
import json
import logging
import os
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax import checkpoint as ckpt
from mimic_jax.assets import g1
from mimic_jax.motion.clip import make_clip
from mimic_jax.motion.library import build_library
from mimic_jax.ppo.trainer import Trainer, TrainConfig
from mimic_jax.presets import DEMO, apply_settings
from mimic_jax.train import EXIT_FAILED, EXIT_INTERRUPTED, RunSettings, train_loop
from mimic_jax.training_log import TrainingLog

ROOT = Path(__file__).resolve().parents[1]
TINY = ["ppo.num_envs=8", "ppo.unroll_length=8", "ppo.hidden_sizes=32,32", "ppo.num_epochs=2",
        "ppo.num_minibatches=2"]


def standing_clip(seconds=4.0, lift=0.0):
    n = int(seconds * 50)
    root_pos = np.tile([0.0, 0.0, 0.76 + lift], (n, 1))
    root_quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    return make_clip(root_pos, root_quat, np.tile(g1.joint_table().default_pos, (n, 1)))


def tiny_config() -> TrainConfig:
    """The demo preset shrunk: the same program as ``train.py --preset demo`` with these overrides."""
    return apply_settings(DEMO.train, TINY)


@pytest.fixture(scope="module")
def trainer():
    return Trainer(tiny_config(), build_library([standing_clip()], ["stand"]), clip_weights=[1.0])


@pytest.fixture(scope="module")
def started(trainer):
    """(carry after 2 iterations, host copy of it) -- the first compile of the test module."""
    carry = jax.block_until_ready(trainer.init())
    for _ in range(2):
        carry, _ = trainer.train_step(carry)
    return carry, jax.device_get(carry)


def meta_for(trainer, iteration):
    steps = iteration * trainer.cfg.ppo.num_envs * trainer.cfg.ppo.unroll_length
    return ckpt.run_meta(trainer.lib, "stand.npz", iteration, steps, run={"preset": "demo"})


def host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_config_json_round_trip():
    cfg = apply_settings(TrainConfig(), ["ppo.value_hidden_sizes=64,32", "sampler.credit=start",
                                         "env.randomization.foot_friction=0.4,1.1", "env.impl=jax"])
    text = json.dumps(ckpt.config_to_dict(cfg))
    assert ckpt.config_from_dict(json.loads(text)) == cfg
    with pytest.raises(ckpt.CheckpointError, match="unknown keys"):
        ckpt.config_from_dict({"ppo": {"num_env": 3}})
    with pytest.raises(ckpt.CheckpointError, match="ppo.num_envs: expected int"):
        ckpt.config_from_dict({"ppo": {"num_envs": "8"}})


@pytest.mark.slow
def test_round_trip_and_exact_resume(trainer, started, tmp_path):
    carry, saved_host = jax.tree.map(jnp.copy, started[0]), started[1]
    path = ckpt.save_run(tmp_path, carry, trainer.cfg, meta_for(trainer, 2), keep=2)
    assert path == tmp_path.resolve() / "checkpoints" / "2"
    for _ in range(2):
        carry, metrics = trainer.train_step(carry)
    straight = host((carry.train_state, metrics))
    compiled = trainer._fused._cache_size()

    restored, meta = ckpt.restore_carry(tmp_path, trainer)
    assert meta["iteration"] == 2 and meta["motion_names"] == ["stand"]
    assert meta["config"] == json.loads(json.dumps(ckpt.config_to_dict(trainer.cfg)))
    assert_trees_equal(host(restored), saved_host)
    for _ in range(2):
        restored, metrics = trainer.train_step(restored)
    assert_trees_equal(host((restored.train_state, metrics)), straight)
    assert trainer._fused._cache_size() == compiled == 1  # neither init nor restore recompiles the step

    run = ckpt.load_run(path)
    assert (run.iteration, run.motion_names, run.motion_set, run.run_dir) == (2, ("stand",), "stand.npz",
                                                                              tmp_path.resolve())
    assert run.config == trainer.cfg and run.fingerprint == meta["fingerprint"]
    assert_trees_equal(host(run.params), saved_host.train_state.params)
    assert_trees_equal(host(run.normalizer.mean), saved_host.train_state.normalizer.mean)


@pytest.mark.slow
def test_keeps_last_k(trainer, started, tmp_path):
    for it in (1, 2, 3):
        ckpt.save_run(tmp_path, started[0], trainer.cfg, meta_for(trainer, it), keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "3"]
    assert ckpt.load_run(tmp_path).iteration == 3
    assert ckpt.read_meta(tmp_path, step=2)["iteration"] == 2


@pytest.mark.slow
def test_refuses_other_motion_set_model_or_layout(trainer, started, tmp_path, monkeypatch):
    ckpt.save_run(tmp_path, started[0], trainer.cfg, meta_for(trainer, 2))
    meta = ckpt.read_meta(tmp_path)
    other = build_library([standing_clip(lift=0.02)], ["stand"])
    with pytest.raises(ckpt.CheckpointError, match="same clip names but other data"):
        ckpt.check_compatible(meta, other)
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint: \['stand'\], only in this run: \['walk'\]"):
        ckpt.check_compatible(meta, build_library([standing_clip()], ["walk"]))
    with pytest.raises(ckpt.CheckpointError, match="another robot model"):
        ckpt.check_compatible({**meta, "model_hash": "0" * 64}, trainer.lib)
    bigger = dataclasses.replace(trainer.cfg, ppo=dataclasses.replace(trainer.cfg.ppo, num_envs=16))
    with pytest.raises(ckpt.CheckpointError, match="config differs: ppo.num_envs 8 vs 16"):
        ckpt.check_compatible(meta, trainer.lib, bigger, "another-layout")
    monkeypatch.setattr(trainer, "lib", other)
    with pytest.raises(ckpt.CheckpointError, match="fingerprint") as err:
        ckpt.restore_carry(tmp_path, trainer)
    assert "\n" not in str(err.value)
    with pytest.raises(ckpt.CheckpointError, match="no such directory"):
        ckpt.load_run(tmp_path / "missing")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint found"):
        ckpt.load_run(tmp_path / "checkpoints" / "2" / "meta")


def _settings(tmp_path, iterations, every=100):
    return RunSettings(run_dir=tmp_path, iterations=iterations, checkpoint_every=every, keep=3,
                       motion_set="stand.npz", extra_meta={"preset": "demo"})


def _log(tmp_path, start, total, trainer):
    return TrainingLog(tmp_path, start_iteration=start, total_iterations=total,
                       env_steps_per_iteration=trainer.cfg.ppo.num_envs * trainer.cfg.ppo.unroll_length)


@pytest.mark.slow
def test_nan_parameters_stop_without_saving(trainer, started, tmp_path):
    good = ckpt.save_run(tmp_path, started[0], trainer.cfg, meta_for(trainer, 2))
    carry = jax.tree.map(jnp.copy, started[0])
    params = jax.tree.map(lambda x: x * jnp.nan, carry.train_state.params)
    carry = carry.replace(train_state=carry.train_state.replace(params=params))
    log = _log(tmp_path, 2, 4, trainer)
    result = train_loop(trainer, carry, _settings(tmp_path, 4, every=1), log, start=2, last_saved=good)
    log.close()
    assert result.status == EXIT_FAILED and result.checkpoint == good and result.iteration == 3
    assert result.message == "parameters became NaN/inf at iteration 3"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["2"]
    assert (tmp_path / "learning_curve.png").is_file()


@pytest.mark.slow
def test_ctrl_c_saves_and_stops(trainer, started, tmp_path, monkeypatch):
    calls = []
    step = trainer.train_step

    def interrupted_step(carry):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return step(carry)

    monkeypatch.setattr(trainer, "train_step", interrupted_step)
    log = _log(tmp_path, 2, 10, trainer)
    result = train_loop(trainer, jax.tree.map(jnp.copy, started[0]), _settings(tmp_path, 10), log, start=2)
    log.close()
    assert result.status == EXIT_INTERRUPTED and result.iteration == 3
    assert result.checkpoint == tmp_path.resolve() / "checkpoints" / "3"
    assert ckpt.load_run(tmp_path).iteration == 3
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [3] and records[0]["env_steps"] == 3 * 64
    assert "sampler/stand/failure_rate" in records[0] and "wall_s" in records[0]


@pytest.mark.slow
def test_second_ctrl_c_does_not_cut_the_last_save(trainer, started, tmp_path, monkeypatch):
    """Ctrl-C stops the run; two more arrive while its state is being saved: the save still completes."""
    import orbax.checkpoint as ocp

    def interrupted_step(carry):
        raise KeyboardInterrupt

    real_save = ocp.CheckpointManager.save

    def interrupted_save(self, *args, **kwargs):
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", interrupted_step)
    monkeypatch.setattr(ocp.CheckpointManager, "save", interrupted_save)
    log = _log(tmp_path, 2, 10, trainer)
    result = train_loop(trainer, jax.tree.map(jnp.copy, started[0]), _settings(tmp_path, 10), log, start=2)
    log.close()
    assert result.status == EXIT_INTERRUPTED and result.checkpoint == tmp_path.resolve() / "checkpoints" / "2"
    assert ckpt.load_run(tmp_path).iteration == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["2"]


@pytest.mark.parametrize("name", ["ttp_walk", "ttp_loco"])
def test_configs_stored_by_earlier_versions_still_load(name):
    """experiments/results keep the configs of earlier runs (e.g. ``undesired_contact_weight``, now
    ``undesired_contacts_weight``: the reward terms' table names every field ``<term>_weight``)."""
    stored = json.loads((ROOT / "experiments" / "results" / name / "config.json").read_text())
    cfg = ckpt.config_from_dict(stored)
    assert cfg.env.rewards.undesired_contacts_weight == stored["env"]["rewards"]["undesired_contact_weight"]
    assert cfg.ppo.num_envs == stored["ppo"]["num_envs"]


def test_failed_restore_silences_only_orbax_orphaned_reads(monkeypatch):
    """Reads a failed restore left unawaited are collected later; only those reports are dropped (CI printed 6535 lines)."""
    import sys
    import types

    from orbax.checkpoint._src.serialization import serialization

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    ckpt._drop_orphaned_reads()
    ckpt._drop_orphaned_reads()  # a second failed restore does not stack another hook

    async def ours():
        pass

    in_orbax = types.FunctionType(ours.__code__.replace(co_filename=serialization.__file__), {})
    orphan = in_orbax()  # a coroutine whose code lives in Orbax's reader, never awaited
    other = ours()
    for coro in (orphan, other):
        sys.unraisablehook(types.SimpleNamespace(object=coro, exc_type=Exception, exc_value=Exception("x"),
                                                 exc_traceback=None, err_msg=None))
        coro.close()
    assert [u.object for u in seen] == [other]
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("asyncio")
    log.addHandler(handler)
    try:
        log.error("Task exception was never retrieved\nfuture: <Task coro=<async_deserialize() defined at "
                  "/site-packages/orbax/checkpoint/_src/serialization/serialization.py:394>>")
        log.error("Task exception was never retrieved\nfuture: <Task coro=<ours()>>")
    finally:
        log.removeHandler(handler)
    assert [r.getMessage().split("<Task coro=<")[1] for r in records] == ["ours()>>"]
