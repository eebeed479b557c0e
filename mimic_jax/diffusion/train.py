"""``python -m mimic_jax.diffusion.train``: train the phase-2 diffusion model on a demonstration dataset.

    python -m mimic_jax.diffusion.train --data DATA                     # GPU: full size; CPU: a one-minute demo
    python -m mimic_jax.diffusion.train --data DATA --bf16 --steps 40000 --set model.horizon=32
    python -m mimic_jax.diffusion.train --resume runs/diffusion-DATA-20260101-120000

The dataset lives on the device and every batch is drawn there (``data.py``). Outputs in the run directory:
``checkpoints/<step>/`` (Orbax: exact resume and the sampling model), ``metrics.jsonl``, ``tensorboard/``,
``loss_curve.png``. Every user error prints one ``error: ...`` line and exits with 2. See docs/phase2.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import time
import typing
from pathlib import Path

from mimic_jax.diffusion.config import PRESETS, Config
from mimic_jax.diffusion.data import DatasetError

from mimic_jax.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError  # noqa: F401
from mimic_jax.cli import ArgumentParser as _Parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mimic_jax.diffusion.train", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="dataset directory (python -m mimic_jax.collect)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: full on a GPU, demo on a CPU")
    p.add_argument("--out", type=Path, help="run directory (default runs/diffusion-<data>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--resume", type=Path, help="continue the run in this directory exactly where it stopped")
    p.add_argument("--steps", type=int, help="total optimizer steps (train.steps; rounded up to whole calls)")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--representation", choices=("body_pos", "joint_pos"), help="model.representation")
    p.add_argument("--bf16", action="store_true", help="bfloat16 activations (model.compute_dtype)")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--checkpoint-every", type=int, help="train.checkpoint_every")
    p.add_argument("--max-minutes", type=float, help="save and stop after this much training in this session "
                                                       "(continue with --resume); for time-limited machines")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, e.g. model.width=256 or diffusion.emphasis=4")
    return p


# -- config --------------------------------------------------------------------------------------------------
def _leaf_types(cls, prefix: str = "") -> dict:
    out = {}
    for name, tp in typing.get_type_hints(cls).items():
        out.update(_leaf_types(tp, f"{prefix}{name}.") if dataclasses.is_dataclass(tp) else {f"{prefix}{name}": tp})
    return out


def _parse(text: str, tp, key: str):
    if tp is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"--set {key}: '{text}' is not a boolean")
        return text.lower() in ("true", "1", "yes")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise UsageError(f"--set {key}: '{text}' is not a valid {tp.__name__}") from None
    choices = typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None
    if choices and text not in choices:
        raise UsageError(f"--set {key}: '{text}' is not one of {', '.join(choices)}")
    return text


def _replace(cfg, parts: list[str], value):
    if len(parts) == 1:
        return dataclasses.replace(cfg, **{parts[0]: value})
    return dataclasses.replace(cfg, **{parts[0]: _replace(getattr(cfg, parts[0]), parts[1:], value)})


def apply_overrides(cfg: Config, items) -> Config:
    """``key=value`` overrides (dotted paths into :class:`Config`), in order."""
    kinds = _leaf_types(Config)
    for item in items:
        key, sep, text = (s.strip() for s in item.partition("="))
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE (e.g. model.width=256), got {item!r}")
        if key not in kinds:
            close = difflib.get_close_matches(key, list(kinds), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "settings are model.*, diffusion.*, train.*"
            raise UsageError(f"unknown setting {key!r} ({hint})")
        cfg = _replace(cfg, key.split("."), _parse(text, kinds[key], key))
    return cfg


def resolve_config(args, backend: str) -> tuple[Config, str]:
    """Preset, then flags, then ``--set`` (a resumed run keeps its stored config)."""
    preset = args.preset or ("full" if backend == "gpu" else "demo")
    cfg = PRESETS[preset].config
    flags = {"train.steps": args.steps, "train.batch_size": args.batch_size, "train.seed": args.seed,
             "train.checkpoint_every": args.checkpoint_every, "model.representation": args.representation,
             "model.compute_dtype": "bfloat16" if args.bf16 else None}
    for key, value in flags.items():
        if value is not None:
            cfg = _replace(cfg, key.split("."), value)
    cfg = apply_overrides(cfg, args.settings)
    check_config(cfg)
    return cfg, preset


def check_config(cfg: Config) -> None:
    m, t = cfg.model, cfg.train
    positive = {"model.horizon": m.horizon, "model.layers": m.layers, "model.width": m.width,
                "model.heads": m.heads, "diffusion.levels": cfg.diffusion.levels, "train.batch_size": t.batch_size,
                "train.steps": t.steps, "train.steps_per_call": t.steps_per_call, "train.keep": t.keep,
                "train.checkpoint_every": t.checkpoint_every, "train.validation_batches": t.validation_batches}
    for key, value in positive.items():
        if value < 1:
            raise UsageError(f"{key} must be positive, got {value}")
    fractions = {"model.attention_dropout": m.attention_dropout, "model.dropout": m.dropout,
                 "train.validation_fraction": t.validation_fraction, "train.ema_max": t.ema_max}
    for key, value in fractions.items():
        if not 0 <= value < 1:
            raise UsageError(f"{key} must be in [0, 1), got {value}")
    rates = {"train.learning_rate": t.learning_rate, "train.grad_clip": t.grad_clip,
             "diffusion.std_floor": cfg.diffusion.std_floor}
    for key, value in rates.items():
        if not value > 0:
            raise UsageError(f"{key} must be positive, got {value}")
    if m.width % m.heads:
        raise UsageError(f"model.width {m.width} is not a multiple of model.heads {m.heads}")
    if not 0 <= m.action_loss_steps <= m.horizon + 1 or m.history < 0:
        raise UsageError(f"model.action_loss_steps must be in 0 .. horizon + 1 = {m.horizon + 1} and history >= 0")


# -- setup ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    """Everything a training loop needs."""

    cfg: Config
    run_dir: Path
    data: object  # data.WindowData on the device
    normalizer: object
    schedule: object
    meta: dict  # the part of every checkpoint's meta this run fixes (dataset, split, preset)


def _dataset(args, stored: dict | None, cfg: Config):
    from mimic_jax.diffusion.data import load_dataset

    path = args.data or (Path(stored["dataset"]["path"]) if stored else None)
    if path is None:
        raise UsageError("--data is required (a dataset directory written by python -m mimic_jax.collect)")
    ds = load_dataset(path, cfg.model.representation)
    if ds.steps < cfg.model.steps:
        raise DatasetError(f"{ds.path}: windows of {ds.steps} steps are shorter than history + horizon + 1 = "
                           f"{cfg.model.steps}")
    if stored and stored["dataset"]["fingerprint"] != ds.fingerprint:
        raise UsageError(f"{stored['checkpoint']}: trained on {stored['dataset']['path']} (fingerprint "
                         f"{stored['dataset']['fingerprint']}); {ds.path} differs ({ds.fingerprint})")
    return ds


def _run_dir(args, stored: dict | None, data_path: Path) -> Path:
    if stored is not None:
        run_dir = Path(stored["checkpoint"]).parent.parent
        if args.out and args.out.resolve() != run_dir:
            raise UsageError(f"--out {args.out} differs from the resumed run {run_dir}; drop --out")
        return run_dir
    run_dir = (args.out or Path("runs") / f"diffusion-{data_path.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        raise UsageError(f"{run_dir} already holds checkpoints; continue it with --resume {run_dir}")
    return run_dir


def setup(args):
    """(Run, train state, stored meta or None); raises one-line user errors."""
    import jax
    import numpy as np

    from mimic_jax.diffusion import checkpoint as ckpt
    from mimic_jax.diffusion.data import split_episodes, to_device
    from mimic_jax.diffusion.learner import fit_to_data, init_state
    from mimic_jax.diffusion.schedule import make_schedule

    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UsageError(f"--max-minutes must be positive, got {args.max_minutes}")
    stored = ckpt.read_meta(args.resume) if args.resume else None
    changes = [f for f in ("preset", "steps", "batch_size", "representation", "seed", "checkpoint_every")
               if getattr(args, f) is not None] + (["bf16"] if args.bf16 else []) + (["set"] if args.settings else [])
    if stored is not None and changes:
        raise UsageError(f"--resume continues a run with its stored config; drop --{changes[0].replace('_', '-')}")
    if stored is not None:
        state, normalizer, cfg, _ = ckpt.restore(args.resume)
        preset = stored.get("preset", "")
    else:
        cfg, preset = resolve_config(args, jax.default_backend())
    ds = _dataset(args, stored, cfg)
    run_dir = _run_dir(args, stored, ds.path)
    held = (stored or {}).get("validation_episodes")
    if held is None:
        train, val = split_episodes(ds.episode, cfg.train.validation_fraction, cfg.train.seed)
    else:
        val_mask = np.isin(ds.episode, held)
        train, val = np.flatnonzero(~val_mask).astype(np.int32), np.flatnonzero(val_mask).astype(np.int32)
    data = to_device(ds, train, val)
    if stored is None:
        k_init, k_stats = jax.random.split(jax.random.PRNGKey(cfg.train.seed))
        state, normalizer = init_state(cfg, k_init), fit_to_data(cfg, data, k_stats)
    meta = {"preset": preset, "validation_episodes": sorted(int(e) for e in np.unique(ds.episode[val])),
            "dataset": {"path": str(ds.path), "fingerprint": ds.fingerprint, "windows": ds.windows,
                        "steps": ds.steps, "rate_hz": ds.card.get("rate_hz"), "train_windows": int(len(train)),
                        "validation_windows": int(len(val))}}
    return Run(cfg, run_dir, data, normalizer, make_schedule(cfg.diffusion), meta), state, stored


# -- loop ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoopResult:
    state: object
    step: int
    status: int
    checkpoint: Path | None
    message: str = ""


def _save(run: Run, state, log) -> Path:
    from mimic_jax.diffusion import checkpoint as ckpt
    from mimic_jax.diffusion.model import count_params

    meta = {**run.meta, "wall_s": log.wall_s(), "params": count_params(state.params)}
    path = ckpt.save(run.run_dir, state, run.normalizer, run.cfg, meta, keep=run.cfg.train.keep)
    log.plot()
    return path


def _metrics(run: Run, state, metrics) -> dict:
    """The call's averaged training metrics plus the validation loss of the EMA weights."""
    import jax

    from mimic_jax.diffusion.learner import validation_fn

    out = dict(jax.device_get(metrics)._asdict())
    if run.data.val.shape[0]:
        key = jax.random.PRNGKey(run.cfg.train.seed + 1)
        val = jax.device_get(validation_fn(run.cfg)(state.ema, run.data, run.normalizer, run.schedule, key))
        out.update({"val/loss": val.loss, "val/loss_state": val.state, "val/loss_action": val.action})
    return out


def train_loop(run: Run, state, log, last_saved: Path | None = None, max_seconds: float | None = None) -> LoopResult:
    """Runs to ``train.steps`` (rounded up to whole calls), checkpointing every ``checkpoint_every`` steps and at
    the end (or after ``max_seconds`` of this session). A non-finite loss stops the run without saving; Ctrl-C
    saves the current state."""
    import jax
    import numpy as np

    from mimic_jax.diffusion.learner import train_fn

    fn, t = train_fn(run.cfg), run.cfg.train
    step = saved_at = int(jax.device_get(state.step))
    checkpoint, t_start = last_saved, time.monotonic()
    try:
        while step < t.steps:
            t0 = time.monotonic()
            state, metrics = fn(state, run.data, run.normalizer, run.schedule)
            record = _metrics(run, state, metrics)
            step = int(jax.device_get(state.step))
            log.log(step, record, time.monotonic() - t0)
            if not np.isfinite(record["loss"]):
                message = f"the loss became {record['loss']} at step {step}"
                return LoopResult(state, step, EXIT_FAILED, checkpoint, message)
            out_of_time = max_seconds is not None and time.monotonic() - t_start >= max_seconds
            if step - saved_at >= t.checkpoint_every or step >= t.steps or out_of_time:
                checkpoint, saved_at = _save(run, state, log), step
            if out_of_time and step < t.steps:
                return LoopResult(state, step, EXIT_OK, checkpoint, "time limit")
    except KeyboardInterrupt:
        if not any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(state)):
            checkpoint, step = _save(run, state, log), int(jax.device_get(state.step))
        return LoopResult(state, step, EXIT_INTERRUPTED, checkpoint)
    return LoopResult(state, step, EXIT_OK, checkpoint)


def _report(result: LoopResult, run: Run, log) -> int:
    if result.status == EXIT_FAILED:
        kept = f"last good checkpoint: {result.checkpoint}" if result.checkpoint else "no checkpoint was saved"
        print(f"error: {result.message}; stopped without saving that state ({kept})", file=sys.stderr)
    elif result.status == EXIT_INTERRUPTED:
        where = f"saved {result.checkpoint}" if result.checkpoint else "nothing new saved"
        print(f"interrupted at step {result.step}: {where}; continue with: python -m mimic_jax.diffusion.train "
              f"--resume {run.run_dir}", file=sys.stderr)
    elif result.message == "time limit":
        log.write(f"stopped at step {result.step} after --max-minutes (saved {result.checkpoint}); continue with: "
                  f"python -m mimic_jax.diffusion.train --resume {run.run_dir}")
    else:
        log.write(f"done: {result.step} steps ({log.wall_s():.0f} s of training in all); run directory {run.run_dir}")
    return result.status


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 1 non-finite loss, 2 user error, 130 Ctrl-C)."""
    from mimic_jax.diffusion.checkpoint import RunError
    from mimic_jax.diffusion.config import PRESETS
    from mimic_jax.diffusion.logs import RunLog
    from mimic_jax.diffusion.model import count_params

    try:
        args = build_parser().parse_args(argv)
        run, state, stored = setup(args)
    except (UsageError, DatasetError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted before training started; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    start = int(stored["step"]) if stored else 0
    log = RunLog(run.run_dir, start_step=start, total_steps=run.cfg.train.steps,
                 wall_offset=float(stored.get("wall_s", 0.0)) if stored else 0.0)
    m, preset = run.cfg.model, run.meta["preset"]
    if preset in PRESETS:
        log.write(f"preset {preset}: {PRESETS[preset].summary}")
    log.write(f"{'resuming' if stored else 'starting'} {run.run_dir}: {count_params(state.params):,} parameters "
              f"({m.layers} layers, width {m.width}, {m.representation}, N={m.history}, H={m.horizon}, "
              f"{m.compute_dtype}), {run.meta['dataset']['train_windows']} training windows, steps {start} -> "
              f"{run.cfg.train.steps}; the first call compiles")
    try:
        max_seconds = 60.0 * args.max_minutes if args.max_minutes else None
        result = train_loop(run, state, log, Path(stored["checkpoint"]) if stored else None, max_seconds)
    finally:
        log.close()
    return _report(result, run, log)


if __name__ == "__main__":
    sys.exit(main())
