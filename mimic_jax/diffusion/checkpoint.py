"""Diffusion runs on disk (Orbax): the whole training state for exact resume, and the model for sampling.

    RUN/checkpoints/<step>/state   every leaf of the TrainState (weights, AdamW moments, EMA, step, key)
    RUN/checkpoints/<step>/model   the EMA weights and the normalizer's statistics (what ``load_model`` reads)
    RUN/checkpoints/<step>/meta    JSON: resolved config, state layout, dataset (path, fingerprint, sizes),
                                   held-out episodes, step, wall time, parameter count, version

Orbax writes a step into a temporary directory and renames it when complete. Problems a user can cause raise
:class:`RunError` with one line.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import dacite
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

import mimic_jax
from mimic_jax import states as st
from mimic_jax.diffusion.config import Config
from mimic_jax.diffusion.learner import TrainState, init_state
from mimic_jax.diffusion.model import DiffusionModel, init_params, make_network
from mimic_jax.diffusion.normalize import Normalizer
from mimic_jax.diffusion.schedule import make_schedule

CHECKPOINTS = "checkpoints"
FORMAT = "mimic_jax.diffusion"
_STATS = ("state_mean", "state_std", "action_mean", "action_std")


class RunError(ValueError):
    """A diffusion run directory or checkpoint that cannot be used here; one line."""


def _manager(directory: Path, keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=not read_only)
    return ocp.CheckpointManager(directory, options=options)


def layout_meta(cfg: Config) -> dict:
    rep = st.layout(cfg.model.representation)
    return {"name": rep.name, "size": rep.size, "parts": [[n, s] for n, s in rep.parts]}


def save(run_dir, state: TrainState, normalizer: Normalizer, cfg: Config, meta: dict, *, keep: int) -> Path:
    """Checkpoint ``state.step`` (atomic; the last ``keep`` are kept); ``meta`` adds to the module doc's JSON."""
    folder = Path(run_dir).resolve() / CHECKPOINTS
    step = int(jax.device_get(state.step))
    host = jax.device_get(state)
    flat = {f"{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(host))}
    model = {"params": jax.tree.map(np.asarray, host.ema),
             "normalizer": {k: np.asarray(getattr(normalizer, k)) for k in _STATS}}
    full = {**meta, "format": FORMAT, "step": step, "config": dataclasses.asdict(cfg), "layout": layout_meta(cfg),
            "mimic_jax_version": mimic_jax.__version__, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with _manager(folder, keep) as mngr:
        if step not in mngr.all_steps():
            mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(flat),
                                                    model=ocp.args.StandardSave(model), meta=ocp.args.JsonSave(full)))
            mngr.wait_until_finished()
    return folder / str(step)


def locate(path) -> tuple[Path, int]:
    """A run directory, its ``checkpoints`` folder or one checkpoint -> (checkpoints folder, step)."""
    from mimic_jax.checkpoint import CheckpointError, locate as locate_run

    try:
        return locate_run(path)
    except CheckpointError as exc:
        raise RunError(str(exc)) from None


def _restore(folder: Path, step: int, **items):
    with _manager(folder, read_only=True) as mngr:
        try:
            return mngr.restore(step, args=ocp.args.Composite(**items))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{folder / str(step)}: unreadable checkpoint ({type(exc).__name__})") from None


def read_meta(path) -> dict:
    """The JSON of the latest checkpoint under ``path`` (with ``checkpoint``: its directory); refuses others."""
    folder, step = locate(path)
    meta = _restore(folder, step, meta=ocp.args.JsonRestore()).meta
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunError(f"{folder / str(step)}: not a diffusion checkpoint (a tracking run? use mimic_jax.eval)")
    return {**meta, "checkpoint": str(folder / str(step))}


def config_of(meta: dict) -> Config:
    """The stored config (strict: an unknown key or a value of the wrong type is refused)."""
    try:
        return dacite.from_dict(Config, meta["config"], config=dacite.Config(strict=True))
    except (dacite.DaciteError, KeyError, TypeError) as exc:
        raise RunError(f"{meta.get('checkpoint')}: config does not fit this mimic_jax ({exc})") from None


def check_layout(meta: dict) -> None:
    """Refuses a checkpoint whose state layout differs from this package's layout of the same name."""
    saved = meta.get("layout", {})
    try:
        here = layout_meta(config_of(meta))
    except ValueError as exc:
        raise RunError(f"{meta.get('checkpoint')}: {exc}") from None
    if saved != here:
        raise RunError(f"{meta.get('checkpoint')}: trained on state layout {saved.get('name')} {saved.get('parts')}, "
                       f"this mimic_jax has {here['name']} {here['parts']}")


def _on_device(tree):
    device = SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)


def _normalizer(stats: dict, cfg: Config) -> Normalizer:
    rep = st.layout(cfg.model.representation)
    return Normalizer(**{k: jnp.asarray(stats[k]) for k in _STATS},
                      global_dims=tuple(int(i) for i in np.flatnonzero(rep.global_mask)),
                      emphasis=float(cfg.diffusion.emphasis))


def _model_target(cfg: Config) -> dict:
    rep, joints = st.layout(cfg.model.representation), make_network(cfg).action_size
    params = jax.eval_shape(lambda: init_params(make_network(cfg), jax.random.PRNGKey(0), cfg.model.steps))
    sizes = {"state_mean": rep.size, "state_std": rep.size, "action_mean": joints, "action_std": joints}
    stats = {k: jax.ShapeDtypeStruct((n,), jnp.float32) for k, n in sizes.items()}
    return _on_device({"params": params, "normalizer": stats})


def restore(path) -> tuple[TrainState, Normalizer, Config, dict]:
    """The exact training state, normalizer, config and meta of the latest checkpoint under ``path``."""
    meta = read_meta(path)
    check_layout(meta)
    cfg = config_of(meta)
    folder, step = Path(meta["checkpoint"]).parent, int(Path(meta["checkpoint"]).name)
    abstract = jax.eval_shape(lambda: init_state(cfg, jax.random.PRNGKey(0)))
    leaves, treedef = jax.tree.flatten(abstract)
    target = _on_device({f"{i:05d}": x for i, x in enumerate(leaves)})
    out = _restore(folder, step, state=ocp.args.StandardRestore(target),
                   model=ocp.args.StandardRestore(_model_target(cfg)))
    state = jax.tree.unflatten(treedef, [out.state[f"{i:05d}"] for i in range(len(leaves))])
    return state, _normalizer(out.model["normalizer"], cfg), cfg, meta


def load_model(path) -> tuple[DiffusionModel, dict]:
    """The sampling model (EMA weights, normalizer, schedule) of the latest checkpoint under ``path``."""
    meta = read_meta(path)
    check_layout(meta)
    cfg = config_of(meta)
    folder, step = Path(meta["checkpoint"]).parent, int(Path(meta["checkpoint"]).name)
    out = _restore(folder, step, model=ocp.args.StandardRestore(_model_target(cfg))).model
    model = DiffusionModel(params=out["params"], normalizer=_normalizer(out["normalizer"], cfg),
                           schedule=make_schedule(cfg.diffusion), cfg=cfg)
    return model, meta
