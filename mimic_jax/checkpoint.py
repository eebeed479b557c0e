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

import contextlib
import dataclasses
import hashlib
import io
import logging
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import flax.serialization
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

import mimic_jax
from mimic_jax import cli, configs
from mimic_jax.envs.rewards import RENAMED_FIELDS
from mimic_jax.motion.library import MotionLibrary, library_fingerprint
from mimic_jax.ppo.networks import NormalizerState, PPOParams
from mimic_jax.ppo.placement import host_copy
from mimic_jax.ppo.trainer import TrainCarry, Trainer, TrainConfig

CHECKPOINTS = "checkpoints"
MODEL_FILE = Path(mimic_jax.__file__).resolve().parent / "assets" / "g1.xml"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message is one line naming the path and the problem."""


# -- configs <-> JSON (mimic_jax.configs: dacite, strict) ------------------------------------------------
def config_to_dict(cfg) -> dict:
    """Nested frozen dataclasses -> nested dicts of plain values (tuples stay tuples until JSON)."""
    return configs.to_dict(cfg)


def config_from_dict(d: dict, cls=TrainConfig):
    """Nested dicts (e.g. read from JSON) -> ``cls``; values are checked against the field types, choices and
    ranges. Missing keys take the field default; unknown keys and bad values raise :class:`CheckpointError`."""
    try:
        return configs.from_dict(_legacy(d) if cls is TrainConfig else d, cls, renamed=RENAMED_FIELDS)
    except configs.ConfigDictError as exc:
        raise CheckpointError(f"config {exc}") from None


def _legacy(d: dict) -> dict:
    """Stored configs of earlier versions: ``env.feet_only_collisions`` (a bool; those models collided with the
    floor only) became ``env.collisions``; ``randomization.push`` (a bool) and ``push_interval_s`` became the
    ``randomization.push`` section (its magnitudes then came from the reset ranges, the published values); the
    removed ``fuse_devices`` mode is dropped when it was off."""
    if isinstance(d, dict) and d.get("fuse_devices") is False:  # a removed mode (one SPMD program); off is moot
        d = {k: v for k, v in d.items() if k != "fuse_devices"}
    env = d.get("env") if isinstance(d, dict) else None
    if not isinstance(env, dict):
        return d
    env = dict(env)
    if "feet_only_collisions" in env:
        env["collisions"] = "feet" if env.pop("feet_only_collisions") else "floor"
    rand = env.get("randomization")
    if isinstance(rand, dict) and isinstance(rand.get("push"), bool):  # pushes got their own config
        rand = dict(rand)
        push = {"enabled": rand.pop("push")}
        if "push_interval_s" in rand:
            push["interval_s"] = rand.pop("push_interval_s")
        env["randomization"] = {**rand, "push": push}
    return {**d, "env": env}


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
    """Parameters and normalizer as nested dicts of numpy arrays (process 0 writes them; a dataclass leaf such
    as brax's ``UInt64`` count would turn numpy back into device arrays, which a group of processes cannot save)."""
    ts = carry.train_state
    norm = {f.name: getattr(ts.normalizer, f.name) for f in dataclasses.fields(ts.normalizer)
            if f.metadata.get("pytree_node", True)}
    item = {"policy": ts.params.policy, "value": ts.params.value, "normalizer": norm}
    return jax.tree.map(host_copy, flax.serialization.to_state_dict(item))


# -- save / restore ----------------------------------------------------------------------------------------
def save_run(run_dir, carry: TrainCarry, trainer_cfg: TrainConfig, meta: dict, *, keep: int | None = 5) -> Path:
    """Writes checkpoint ``meta['iteration']`` of ``carry`` under ``run_dir/checkpoints`` (atomic, last ``keep``).

    ``meta`` comes from :func:`run_meta`. A step that already exists is left as it is. Returns its directory.
    With several processes every process calls this with ``trainer.placement.saved(carry)`` (each writes its
    devices' environments; process 0 the rest).
    """
    directory = Path(run_dir).resolve() / CHECKPOINTS
    step = int(meta["iteration"])
    leaves, signature = _leaves(carry)
    flat = {f"{i:05d}": leaf for i, leaf in enumerate(leaves) if np.size(leaf) > 0}  # Orbax refuses empty arrays
    full_meta = {**meta, "config": config_to_dict(trainer_cfg), "model_hash": model_hash(),
                 "mimic_jax_version": mimic_jax.__version__, "state_signature": signature,
                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    policy = _policy_item(carry)
    with cli.deferred_interrupts(), _manager(directory, keep) as mngr:  # Ctrl-C waits for the write to end
        if step not in mngr.all_steps():
            mngr.save(step, args=ocp.args.Composite(carry=ocp.args.StandardSave(flat),
                                                    policy=ocp.args.StandardSave(policy),
                                                    meta=ocp.args.JsonSave(full_meta)))
            mngr.wait_until_finished()
    return directory / str(step)


def remove_partial_writes(run_dir) -> list[Path]:
    """Deletes the temporary directories of checkpoint writes that never finished (a killed process); with
    several processes process 0 deletes them and every process returns the same list."""
    from mimic_jax.distributed import barrier

    folder = Path(run_dir) / CHECKPOINTS
    partial = sorted(folder.glob("*.orbax-checkpoint-tmp*")) if folder.is_dir() else []
    barrier("mimic_jax:listed-partial-writes")
    if jax.process_index() == 0:
        for path in partial:
            shutil.rmtree(path)
    barrier("mimic_jax:removed-partial-writes")
    return partial


def latest_checkpoint(run_dir) -> Path | None:
    """The newest finished checkpoint directory of a run, from the file system alone (no JAX, no Orbax: the
    ``--processes`` launcher uses it after its processes ended). Orbax names a step only once it is complete."""
    folder = Path(run_dir) / CHECKPOINTS
    steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir()] if folder.is_dir() else []
    return folder / str(max(steps)) if steps else None


def discard_after(run_dir, step: int) -> list[int]:
    """Deletes the checkpoints later than ``step`` (a run resumed from ``step`` rewrites them); returns them."""
    folder = Path(run_dir).resolve() / CHECKPOINTS
    with _manager(folder) as mngr:
        later = sorted(s for s in mngr.all_steps() if s > step)
        for s in later:
            mngr.delete(s)
    return later


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
        steps = mngr.all_steps()
        if step not in steps:
            raise CheckpointError(f"{folder}: no checkpoint at iteration {step} (have {steps})")
        quiet = _ClosedLoopFilter(sys.stderr)
        try:
            with contextlib.redirect_stderr(quiet):
                return mngr.restore(step, args=ocp.args.Composite(**items))
        except Exception as exc:  # noqa: BLE001 -- Orbax and TensorStore raise bare Exceptions for damaged files
            sys.stderr = quiet  # reads still in flight keep finishing into the closed loop until the process ends
            _drop_orphaned_reads()
            raise CheckpointError(_unreadable(folder, step, exc, [s for s in steps if s != step])) from None


def _drop_orphaned_reads() -> None:
    """Silence the reports of the Orbax reads a failed restore left behind (installed once per process).

    The other array reads of the damaged checkpoint never get awaited once the first one failed; when they
    are collected (at any moment until the process ends) each is reported with its full TensorStore spec
    (thousands of lines), by one of two channels: a bare coroutine through ``sys.unraisablehook``
    ('Exception ignored in: <coroutine ...>'), a Task through the ``asyncio`` logger ('Task exception was
    never retrieved'). Only reports of Orbax's code are dropped; every other one still gets through.
    """
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _OrphanedTaskFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(_OrphanedTaskFilter())
    previous = sys.unraisablehook
    if getattr(previous, "_mimic_jax_orphans", False):
        return

    def hook(unraisable):
        code = getattr(unraisable.object, "cr_code", None)
        if code is not None and "orbax" in code.co_filename:
            return
        previous(unraisable)

    hook._mimic_jax_orphans = True
    sys.unraisablehook = hook


class _OrphanedTaskFilter(logging.Filter):
    """Drops asyncio's 'Task exception was never retrieved' records of Orbax's reads (:func:`_drop_orphaned_reads`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Task exception was never retrieved") and "orbax" in text)


class _ClosedLoopFilter(io.TextIOBase):
    """stderr without the 'RuntimeError: Event loop is closed' tracebacks of a failed restore.

    When one array of a damaged checkpoint fails to read, Orbax closes its asyncio loop while TensorStore
    still completes the other reads on its own threads; each completion prints such a traceback (dozens).
    Exactly those blocks are dropped; everything else is passed through as it comes.
    """

    _NOISE = "RuntimeError: Event loop is closed"

    def __init__(self, stream):
        self.stream = stream
        self.pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        key = threading.get_ident()
        pending = self.pending.pop(key, "") + text
        if not pending.startswith("Traceback"):
            self.stream.write(pending)
        elif pending.rstrip("\n").endswith(self._NOISE) and pending.endswith("\n"):
            pass
        elif any(line and not line[0].isspace() and not line.startswith("Traceback")
                 for line in pending.split("\n")[:-1]):
            self.stream.write(pending)  # another exception: shown whole
        else:
            self.pending[key] = pending  # a traceback still being printed
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _unreadable(folder: Path, step: int, exc: Exception, others: list[int]) -> str:
    """One line for a damaged checkpoint: which, the library's reason (cut short) and what else there is."""
    reason = (str(exc).strip().splitlines() or [""])[0].split(" See full")[0]
    reason = f"{type(exc).__name__}: {reason[:100]}{'...' if len(reason) > 100 else ''}" if reason else \
        type(exc).__name__
    hint = (f"; other checkpoints here: {', '.join(map(str, others))} (resume one with --resume "
            f"{folder}/<step>)" if others else "")
    return f"{folder / str(step)}: unreadable checkpoint, a damaged or truncated file ({reason}){hint}"


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
    """Shapes, dtypes and device placement of the trainer's carry in its saved layout, without running anything."""
    return trainer.abstract_saved_carry()


def _zeros(spec) -> jax.Array:
    """An empty array in ``spec``'s sharding (one that spans processes too)."""
    return jax.make_array_from_callback(spec.shape, spec.sharding, lambda index: np.zeros(spec.shape, spec.dtype)[index])


def _rebuild(abstract_leaves: list, flat: dict) -> list:
    """Restored non-empty leaves + freshly made empty ones, with weak types as the trainer makes them."""
    out = []
    for i, spec in enumerate(abstract_leaves):
        if spec.size == 0:
            out.append(_zeros(spec))
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
    saved = jax.tree_util.tree_unflatten(treedef, _rebuild(abstract_leaves, flat))
    return trainer.placement.from_saved(saved), meta


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
    except Exception as exc:  # noqa: BLE001 -- see _restore
        raise CheckpointError(_unreadable(folder, step, exc, [])) from None
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
