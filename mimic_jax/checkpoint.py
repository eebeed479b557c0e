"""Run checkpoints with Orbax: the whole ``TrainCarry`` (exact resume) plus a small policy item for evaluation.

Layout of a run directory::

    RUN/checkpoints/<iteration>/carry    every array of the TrainCarry (params, normalizer, optimizer, sampler,
                                         env state, keys), as a flat dict of leaves in flattening order
    RUN/checkpoints/<iteration>/policy   params + observation normalizer only, as host arrays (``load_run``)
    RUN/checkpoints/<iteration>/meta     JSON: resolved config (every field, nested), iteration, env steps,
                                         motion set, motion names, library fingerprint, model hash, version

Orbax writes each step into a temporary directory and renames it when complete, so a crash never leaves
a half-written checkpoint; the last ``keep`` steps are kept. Every problem a user can cause (no
checkpoint, another motion set, another robot model, another state layout) raises :class:`CheckpointError`
with a one-line message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import types
import typing
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

import mimic_jax
from mimic_jax.motion.library import MotionLibrary, library_fingerprint
from mimic_jax.ppo.networks import NormalizerState, PPOParams
from mimic_jax.ppo.trainer import TrainCarry, Trainer, TrainConfig

CHECKPOINTS = "checkpoints"
MODEL_FILE = Path(mimic_jax.__file__).resolve().parent / "assets" / "g1.xml"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message is one line naming the path and the problem."""


# -- configs <-> JSON --------------------------------------------------------------------------------------
def config_to_dict(cfg) -> dict:
    """Nested frozen dataclasses -> nested dicts of plain values (tuples stay tuples until JSON)."""
    return {f.name: (config_to_dict(v) if dataclasses.is_dataclass(v) else v)
            for f in dataclasses.fields(cfg) for v in [getattr(cfg, f.name)]}


def config_from_dict(d: dict, cls=TrainConfig, where: str = ""):
    """Nested dicts (e.g. read from JSON) -> ``cls``; values are checked against the field types.

    Missing keys take the field default; unknown keys raise :class:`CheckpointError` naming them.
    """
    if not isinstance(d, dict):
        raise CheckpointError(f"config {where or cls.__name__}: expected a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise CheckpointError(f"config {where or cls.__name__}: unknown keys {unknown}")
    values = {k: coerce_value(v, hints[k], f"{where}{k}") for k, v in d.items()}
    return cls(**values)


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def coerce_value(value, tp, where: str):
    """A JSON-like value -> the type ``tp`` of a config field (dataclass, Union, Literal, tuple, scalars)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(value, tp, f"{where}.")
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce_value(value, arg, where)
            except CheckpointError as exc:
                errors.append(str(exc))
        raise CheckpointError(errors[0] if errors else f"config {where}: {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise CheckpointError(f"config {where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise CheckpointError(f"config {where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce_value(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise CheckpointError(f"config {where}: expected {len(args)} values, got {len(value)}")
        return tuple(coerce_value(v, a, where) for v, a in zip(value, args))
    return _coerce_scalar(value, tp, where)


def _coerce_scalar(value, tp, where: str):
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}
    if tp not in ok:
        return value
    if not ok[tp]:
        raise CheckpointError(f"config {where}: expected {tp.__name__}, got {value!r}")
    return tp(value)


def flatten_config(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'ppo': {'num_envs': 8}} -> {'ppo.num_envs': 8}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


# -- metadata ----------------------------------------------------------------------------------------------
def model_hash() -> str:
    """sha256 of the robot model file every checkpoint was trained on."""
    return hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()


def run_meta(lib: MotionLibrary, motion_set: str, iteration: int, env_steps: int, **extra) -> dict:
    """The caller's part of a checkpoint's JSON; ``save_run`` adds config, model hash, version, layout."""
    return {"iteration": int(iteration), "env_steps": int(env_steps), "motion_set": str(motion_set),
            "motion_names": list(lib.names), "fingerprint": library_fingerprint(lib), **extra}


def _leaves(carry) -> tuple[list, str]:
    """Leaves of the carry and a signature of its layout (paths, shapes, dtypes)."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(carry)
    h = hashlib.sha256()
    for path, leaf in with_paths:
        h.update(f"{jax.tree_util.keystr(path)}:{np.shape(leaf)}:{jnp.result_type(leaf)};".encode())
    return [leaf for _, leaf in with_paths], h.hexdigest()[:16]


def _manager(directory: Path, keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=not read_only)
    return ocp.CheckpointManager(directory, options=options)


def _policy_item(carry: TrainCarry) -> dict:
    ts = jax.device_get(carry.train_state)
    norm = {f.name: getattr(ts.normalizer, f.name) for f in dataclasses.fields(ts.normalizer)
            if f.metadata.get("pytree_node", True)}
    return jax.tree.map(np.asarray, {"policy": ts.params.policy, "value": ts.params.value, "normalizer": norm})


# -- save / restore ----------------------------------------------------------------------------------------
def save_run(run_dir, carry: TrainCarry, trainer_cfg: TrainConfig, meta: dict, *, keep: int | None = 5) -> Path:
    """Writes checkpoint ``meta['iteration']`` of ``carry`` under ``run_dir/checkpoints`` (atomic, last ``keep``).

    ``meta`` comes from :func:`run_meta`. A step that already exists is left as it is. Returns its directory.
    """
    directory = Path(run_dir).resolve() / CHECKPOINTS
    step = int(meta["iteration"])
    leaves, signature = _leaves(carry)
    flat = {f"{i:05d}": leaf for i, leaf in enumerate(leaves) if np.size(leaf) > 0}  # Orbax refuses empty arrays
    full_meta = {**meta, "config": config_to_dict(trainer_cfg), "model_hash": model_hash(),
                 "mimic_jax_version": mimic_jax.__version__, "state_signature": signature,
                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with _manager(directory, keep) as mngr:
        if step not in mngr.all_steps():
            mngr.save(step, args=ocp.args.Composite(carry=ocp.args.StandardSave(flat),
                                                    policy=ocp.args.StandardSave(_policy_item(carry)),
                                                    meta=ocp.args.JsonSave(full_meta)))
            mngr.wait_until_finished()
    return directory / str(step)


def locate(path) -> tuple[Path, int]:
    """A run directory, its ``checkpoints`` folder or one checkpoint directory -> (checkpoints folder, step)."""
    path = Path(path).resolve()
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such directory")
    if path.name.isdigit() and (path / "meta").is_dir():
        return path.parent, int(path.name)
    folder = path / CHECKPOINTS if (path / CHECKPOINTS).is_dir() else path
    with _manager(folder, read_only=True) as mngr:
        step = mngr.latest_step()
    if step is None:
        raise CheckpointError(f"{path}: no checkpoint found (expected a run directory or a checkpoint directory)")
    return folder, step


def _restore(folder: Path, step: int, **items):
    with _manager(folder, read_only=True) as mngr:
        if step not in mngr.all_steps():
            raise CheckpointError(f"{folder}: no checkpoint at iteration {step} (have {mngr.all_steps()})")
        try:
            return mngr.restore(step, args=ocp.args.Composite(**items))
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{folder / str(step)}: unreadable checkpoint ({type(exc).__name__})") from None


def read_meta(path, step: int | None = None) -> dict:
    """The JSON metadata of the latest (or ``step``) checkpoint under ``path``, with ``checkpoint`` added."""
    folder, latest = locate(path)
    step = latest if step is None else step
    meta = _restore(folder, step, meta=ocp.args.JsonRestore()).meta
    return {**meta, "checkpoint": str(folder / str(step))}


def _differences(meta: dict, cfg: TrainConfig, limit: int = 3) -> str:
    saved = flatten_config(meta.get("config", {}))
    current = flatten_config(config_to_dict(cfg))
    diffs = [f"{k} {saved.get(k)!r} vs {current.get(k)!r}" for k in sorted(set(saved) | set(current))
             if saved.get(k) != current.get(k)]
    more = f" and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def check_compatible(meta: dict, lib: MotionLibrary, cfg: TrainConfig | None = None, signature: str | None = None):
    """Refuses (one line naming what differs) a checkpoint of another robot model, motion set or state layout."""
    where = meta.get("checkpoint", "checkpoint")
    if meta.get("model_hash") != model_hash():
        saved_hash = str(meta.get("model_hash", "?"))[:12]
        raise CheckpointError(f"{where}: trained on another robot model (g1.xml sha256 {saved_hash} vs "
                              f"{model_hash()[:12]} here)")
    names, saved = list(lib.names), list(meta.get("motion_names", []))
    if names != saved:
        missing, extra = [n for n in saved if n not in names], [n for n in names if n not in saved]
        detail = (f"only in the checkpoint: {missing}, only in this run: {extra}" if missing or extra
                  else "clips in another order")
        raise CheckpointError(f"{where}: motion set '{meta.get('motion_set')}' differs from this run's ({detail})")
    if meta.get("fingerprint") != library_fingerprint(lib):
        raise CheckpointError(f"{where}: motion set '{meta.get('motion_set')}' has the same clip names but other "
                              f"data (fingerprint {meta.get('fingerprint')} vs {library_fingerprint(lib)})")
    if signature is not None and meta.get("state_signature") != signature:
        diff = _differences(meta, cfg) if cfg is not None else ""
        raise CheckpointError(f"{where}: training state does not fit this trainer "
                              f"({'config differs: ' + diff if diff else 'saved by another mimic_jax version'})")


def _abstract_carry(trainer: Trainer) -> TrainCarry:
    """Shapes, dtypes and device placement of the trainer's carry, without running anything."""
    return trainer.abstract_carry()


def _rebuild(abstract_leaves: list, flat: dict) -> list:
    """Restored non-empty leaves + freshly made empty ones, with weak types as the trainer makes them."""
    out = []
    for i, spec in enumerate(abstract_leaves):
        if spec.size == 0:
            out.append(jax.device_put(jnp.zeros(spec.shape, spec.dtype), spec.sharding))
        elif spec.weak_type:
            out.append(jax.device_put(jnp.asarray(np.asarray(flat[f"{i:05d}"]).item()), spec.sharding))
        else:
            out.append(flat[f"{i:05d}"])
    return out


def restore_carry(run_dir, trainer: Trainer, step: int | None = None) -> tuple[TrainCarry, dict]:
    """The exact ``TrainCarry`` saved at ``step`` (latest if None) and its metadata.

    Refuses a checkpoint of another motion set, robot model or state layout with :class:`CheckpointError`.
    """
    meta = read_meta(run_dir, step)
    folder, step = Path(meta["checkpoint"]).parent, int(Path(meta["checkpoint"]).name)
    abstract = _abstract_carry(trainer)
    abstract_leaves, signature = _leaves(abstract)
    check_compatible(meta, trainer.lib, trainer.cfg, signature)
    target = {f"{i:05d}": s for i, s in enumerate(abstract_leaves) if s.size > 0}
    flat = _restore(folder, step, carry=ocp.args.StandardRestore(target)).carry
    treedef = jax.tree_util.tree_structure(abstract)
    return jax.tree_util.tree_unflatten(treedef, _rebuild(abstract_leaves, flat)), meta


# -- evaluation --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """What evaluation needs from a checkpoint: the config, the policy and which motions it learned."""

    config: TrainConfig
    params: PPOParams
    normalizer: NormalizerState
    motion_set: str
    motion_names: tuple[str, ...]
    fingerprint: str
    iteration: int
    env_steps: int
    run_dir: Path
    checkpoint: Path
    meta: dict = dataclasses.field(repr=False, compare=False)


def _policy_target(folder: Path, step: int):
    """The saved policy item's shapes and dtypes on this host's first device: a checkpoint written on a GPU
    loads on a CPU and back (without a target, Orbax refuses another device topology)."""
    try:
        tree = ocp.StandardCheckpointHandler().metadata(folder / str(step) / "policy").tree
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{folder / str(step)}: unreadable checkpoint ({type(exc).__name__})") from None
    device = SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)


def load_run(path) -> LoadedRun:
    """Policy and config of a run directory (latest checkpoint) or of one checkpoint directory.

    Restores only the small ``policy`` item: no environment state, no trainer, no compilation.
    """
    folder, step = locate(path)
    restored = _restore(folder, step, policy=ocp.args.StandardRestore(_policy_target(folder, step)),
                        meta=ocp.args.JsonRestore())
    meta, policy = {**restored.meta, "checkpoint": str(folder / str(step))}, restored.policy
    try:
        config = config_from_dict(meta["config"])
        params = PPOParams(policy=jax.tree.map(jnp.asarray, policy["policy"]),
                           value=jax.tree.map(jnp.asarray, policy["value"]))
        normalizer = NormalizerState(**jax.tree.map(jnp.asarray, policy["normalizer"]))
        return LoadedRun(config=config, params=params, normalizer=normalizer, motion_set=meta["motion_set"],
                         motion_names=tuple(meta["motion_names"]), fingerprint=meta["fingerprint"],
                         iteration=int(meta["iteration"]), env_steps=int(meta["env_steps"]),
                         run_dir=folder.parent, checkpoint=folder / str(step), meta=meta)
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / str(step)}: incomplete checkpoint (missing {exc})") from None
