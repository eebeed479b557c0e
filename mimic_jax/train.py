"""``python -m mimic_jax.train``: train a motion-tracking policy on a motion set.

    python -m mimic_jax.train --motion-set locomotion_basic             # GPU: full size; CPU: a quick demo
    python -m mimic_jax.train --motion-set walk.npz,run.npz --set ppo.learning_rate=3e-4
    python -m mimic_jax.train --resume runs/locomotion_basic-20260101-120000

Outputs in the run directory: ``checkpoints/<iteration>/`` (Orbax), ``metrics.jsonl``, ``tensorboard/`` and
``learning_curve.png``. See ``docs/training.md``. Every user error prints one ``error: ...`` line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
import time
from pathlib import Path

from mimic_jax import cli
from mimic_jax.checkpoint import (CheckpointError, check_compatible, config_from_dict, config_to_dict,
                                  discard_after, read_meta, remove_partial_writes, restore_carry, run_meta,
                                  save_run)
from mimic_jax.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError  # noqa: F401
from mimic_jax.presets import PRESETS, apply_settings


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag maps onto a TrainConfig field or a run setting."""
    p = cli.ArgumentParser(prog="python -m mimic_jax.train", description=__doc__.split("\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motion-set", help="set name, set YAML path or comma-separated clip files")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: full on a GPU, demo on a CPU")
    p.add_argument("--impl", choices=("auto", "jax", "warp"), help="MJX backend (default auto: warp on a GPU)")
    p.add_argument("--num-envs", type=int, help="environments (all devices together)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=int, help="total PPO iterations of the run")
    length.add_argument("--env-steps", type=float, help="total env steps (rounded up to whole iterations)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", type=Path, help="run directory (default runs/<set>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--devices", type=int, help="local devices to use (0: all)")
    p.add_argument("--iterations-per-call", type=int, help="iterations per jitted call (one log line each)")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints")
    p.add_argument("--keep", type=int, help="checkpoints to keep (default 5)")
    p.add_argument("--resume", type=Path, help="continue the run in this directory exactly where it stopped")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. ppo.learning_rate=3e-4 or env.on_clip_end=truncate; the same as "
                        "--ppo.learning-rate 3e-4 (any config field as a dotted flag, applied before --set)")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (if installed)")
    return p


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything about a run that is not the TrainConfig."""

    run_dir: Path
    iterations: int
    checkpoint_every: int
    keep: int
    motion_set: str
    extra_meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LoopResult:
    """How a training loop ended: status (an exit code), last checkpoint and, on failure, why."""

    carry: object
    iteration: int
    status: int
    checkpoint: Path | None
    message: str = ""


def _positive(args, *names):
    for name in names:
        value = getattr(args, name)
        if value is not None and value < (0 if name == "devices" else 1):
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _impl(args, stored_impl: str | None) -> str:
    """The MJX implementation: ``--impl`` (auto: Warp on a GPU), or on resume without it the stored one."""
    from mimic_jax.backend import resolve_impl

    if args.impl in (None, "auto") and stored_impl is not None:
        return resolve_impl(stored_impl)  # a run trained with Warp needs a GPU to continue
    return resolve_impl(args.impl or "auto")


def _check_layout(cfg, num_devices: int) -> None:
    """The batch layout the trainer needs, checked before anything is built."""
    envs, unroll, minibatches = cfg.ppo.num_envs, cfg.ppo.unroll_length, cfg.ppo.num_minibatches
    if envs % num_devices:
        raise UsageError(f"{envs} envs (ppo.num_envs) do not split over {num_devices} devices")
    if (envs // num_devices * unroll) % minibatches:
        raise UsageError(f"{envs // num_devices} envs x {unroll} steps per device do not split into {minibatches} "
                         "minibatches (ppo.num_minibatches)")


def _config(args, stored: dict | None, spec):
    """TrainConfig and preset name: preset (or the checkpoint's config), set sampler overrides, flags, --set."""
    import jax

    from mimic_jax.backend import resolve_impl
    from mimic_jax.envs.autoreset import with_sampler_overrides

    backend = jax.default_backend()
    stored_impl = None
    if stored is not None:
        preset = stored.get("run", {}).get("preset", "")
        if args.preset and args.preset != preset:
            raise UsageError(f"--preset {args.preset} differs from the run's preset {preset!r}; drop --preset")
        cfg = config_from_dict(stored["config"])
        stored_impl = cfg.env.impl
    else:
        preset = args.preset or ("full" if backend == "gpu" else "demo")
        cfg = PRESETS[preset].train
        cfg = dataclasses.replace(cfg, sampler=with_sampler_overrides(cfg.sampler, dict(spec.sampler)))
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, impl=_impl(args, stored_impl)))
    if args.num_envs:
        cfg = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, num_envs=args.num_envs))
    top = {"seed": args.seed, "num_devices": args.devices, "iterations_per_call": args.iterations_per_call}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in top.items() if v is not None})
    cfg = apply_settings(cfg, args.settings)
    resolve_impl(cfg.env.impl)  # also after --set env.impl=warp
    if cfg.num_devices > len(jax.local_devices()):
        raise UsageError(f"--devices {cfg.num_devices}: only {len(jax.local_devices())} {backend} device(s) here")
    _check_layout(cfg, cfg.num_devices or len(jax.local_devices()))
    return cfg, preset


def _motion_set(args, stored: dict | None):
    """(spec string, resolved spec); a resumed run falls back to the absolute paths it stored."""
    from mimic_jax.motion.sets import MotionSetError, resolve_motion_set

    if stored is None and not args.motion_set:
        raise UsageError("--motion-set is required (a set name, a set YAML or comma-separated clip files)")
    text = args.motion_set or stored["motion_set"]
    try:
        return text, resolve_motion_set(text)
    except MotionSetError:
        fallback = (stored or {}).get("run", {}).get("motion_set_resolved")
        if args.motion_set or not fallback:
            raise
        return text, resolve_motion_set(fallback)


def _resolved(spec) -> str:
    return str(spec.source) if spec.source else ",".join(str(e.path.resolve()) for e in spec.entries)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; dotted config flags (``--ppo.learning-rate 3e-4``) join the ``--set`` overrides."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.settings = cli.dotted_settings(extra, parser.prog) + args.settings
    return args


def plan_run(args):
    """Command line -> (TrainConfig, RunSettings, spec, stored meta or None); raises one-line user errors."""
    _positive(args, "num_envs", "iterations", "env_steps", "iterations_per_call", "checkpoint_every", "keep",
              "devices")
    if args.out is not None:
        cli.check_writable(args.out, "--out", kind="directory")
    stored = read_meta(args.resume) if args.resume else None
    text, spec = _motion_set(args, stored)
    cfg, preset = _config(args, stored, spec)
    run = (stored or {}).get("run", {})
    if stored is not None:
        run_dir = Path(stored["checkpoint"]).parent.parent
        if args.out and args.out.resolve() != run_dir:
            raise UsageError(f"--out {args.out} differs from the resumed run {run_dir}; drop --out")
        cli.check_writable(run_dir, "--resume", kind="directory")
    else:
        run_dir = (args.out or Path("runs") / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
        if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
            raise UsageError(f"{run_dir} already holds checkpoints; continue it with --resume {run_dir}")
        cli.check_writable(run_dir, "--out", kind="directory")
    steps = cfg.ppo.num_envs * cfg.ppo.unroll_length
    iterations = args.iterations or (math.ceil(args.env_steps / steps) if args.env_steps else None)
    defaults = PRESETS.get(preset, PRESETS["demo"])
    iterations = iterations or run.get("iterations") or defaults.iterations
    every = args.checkpoint_every or run.get("checkpoint_every") or defaults.checkpoint_every
    extra = {"preset": preset, "iterations": iterations, "checkpoint_every": every,
             "motion_set_resolved": _resolved(spec)}
    settings = RunSettings(run_dir=run_dir, iterations=iterations, checkpoint_every=every,
                           keep=args.keep or run.get("keep") or 5, motion_set=text, extra_meta=extra)
    return cfg, settings, spec, stored


def _save(trainer, carry, settings: RunSettings, log) -> Path:
    import jax

    iteration = int(jax.device_get(carry.train_state.iteration))
    meta = run_meta(trainer.lib, settings.motion_set, iteration,
                    iteration * trainer.cfg.ppo.num_envs * trainer.cfg.ppo.unroll_length,
                    run={**settings.extra_meta, "keep": settings.keep}, wall_s=log.wall_s())
    path = save_run(settings.run_dir, carry, trainer.cfg, meta, keep=settings.keep)
    log.plot()
    return path


def _savable(carry) -> bool:
    """The carry still exists (not donated to an unfinished call) and its parameters are finite."""
    import jax
    import numpy as np

    leaves = jax.tree.leaves(carry)
    if any(getattr(x, "is_deleted", lambda: False)() for x in leaves):
        return False
    return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(carry.train_state.params)))


def train_loop(trainer, carry, settings: RunSettings, log, start: int, last_saved: Path | None = None) -> LoopResult:
    """Runs until ``settings.iterations``; checkpoints every ``checkpoint_every`` and at the end.

    Non-finite parameters or an overflowed MJX-Warp buffer stop the run without saving (the last good
    checkpoint stays); Ctrl-C saves the current state if it is usable.
    """
    import jax

    from mimic_jax.ppo.trainer import PhysicsBufferError, check_buffers
    from mimic_jax.sampling import sampler_metrics
    from mimic_jax.training_log import flatten_sampler

    stats_fn = jax.jit(sampler_metrics, static_argnums=1)
    iteration, saved_at, checkpoint = start, start, last_saved
    try:
        while iteration < settings.iterations:
            t0 = time.monotonic()
            carry, metrics = trainer.train_step(carry)
            metrics = jax.device_get(metrics)
            seconds = time.monotonic() - t0
            iteration += trainer.cfg.iterations_per_call
            stats = jax.device_get(stats_fn(trainer.sampler(carry), trainer.cfg.sampler))
            log.log(iteration, metrics, flatten_sampler(stats, trainer.lib.names), seconds)
            try:
                check_buffers(metrics, trainer.cfg.env)
                if not bool(metrics["params_finite"]):
                    raise FloatingPointError(f"parameters became NaN/inf at iteration {iteration}")
            except (PhysicsBufferError, FloatingPointError) as exc:
                log.plot()
                return LoopResult(carry, iteration, EXIT_FAILED, checkpoint, str(exc))
            if iteration - saved_at >= settings.checkpoint_every or iteration >= settings.iterations:
                checkpoint, saved_at = _save(trainer, carry, settings, log), iteration
    except KeyboardInterrupt:
        if _savable(carry):
            log.write("interrupted: saving the current state (Ctrl-C is ignored until it is written)")
            with cli.ignored_interrupts():
                checkpoint = _save(trainer, carry, settings, log)
            iteration = int(Path(checkpoint).name)
        return LoopResult(carry, iteration, EXIT_INTERRUPTED, checkpoint)
    return LoopResult(carry, iteration, EXIT_OK, checkpoint)


def _wandb(enabled: bool, cfg, settings: RunSettings):
    if not enabled:
        return None
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb needs the wandb package (pip install wandb)") from None
    return wandb.init(project="mimic_jax", name=settings.run_dir.name, id=settings.run_dir.name, resume="allow",
                      dir=str(settings.run_dir), config=config_to_dict(cfg))


def _setup(args):
    """Plans the run, loads the motions, builds the trainer and its state (fresh or restored)."""
    import jax

    from mimic_jax.motion.library import build_library
    from mimic_jax.motion.sets import load_motion_set
    from mimic_jax.ppo.trainer import Trainer

    cfg, settings, spec, stored = plan_run(args)
    for path in remove_partial_writes(settings.run_dir):
        print(f"note: removed {path}, a checkpoint write that did not finish", file=sys.stderr)
    wandb_run = _wandb(args.wandb, cfg, settings)
    clips = load_motion_set(spec, progress=sys.stderr.isatty())
    lib = build_library([c for _, c, _ in clips], [name for name, _, _ in clips])
    if stored is not None:
        check_compatible(stored, lib)  # before building the trainer: a wrong set fails in seconds
    trainer = Trainer(cfg, lib, clip_weights=[w for _, _, w in clips])
    if stored is not None:
        carry, meta = restore_carry(stored["checkpoint"], trainer)
        start, wall = int(meta["iteration"]), float(meta.get("wall_s", 0.0))
        later = discard_after(settings.run_dir, start)  # this run goes on from ``start``: later steps are stale
        if later:
            print(f"note: removed checkpoints {', '.join(map(str, later))}, later than the resumed {start}",
                  file=sys.stderr)
    else:
        carry, start, wall = trainer.init(), 0, 0.0
    jax.block_until_ready(carry)  # donating buffers that are still being written can hang the CPU runtime
    return trainer, carry, settings, stored, (start, wall, wandb_run)


def _report(result: LoopResult, settings: RunSettings, log) -> int:
    resume = f"python -m mimic_jax.train --resume {settings.run_dir}"
    if result.status == EXIT_FAILED:
        kept = (f"last good checkpoint: {result.checkpoint}" if result.checkpoint else "no checkpoint was saved")
        cli.fail(f"{result.message}; stopped without saving that state ({kept})", EXIT_FAILED)
    elif result.status == EXIT_INTERRUPTED:
        where = f"saved {result.checkpoint}" if result.checkpoint else "nothing new saved"
        print(f"interrupted at iteration {result.iteration}: {where}; continue with: {resume}", file=sys.stderr)
    else:
        log.write(f"done: {result.iteration} iterations ({log.wall_s():.0f} s of training in all); "
                  f"run directory {settings.run_dir}")
    return result.status


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 1 NaN parameters or Warp overflow, 2 user error, 130 Ctrl-C)."""
    from mimic_jax.training_log import TrainingLog

    try:
        args = parse_args(argv)
        trainer, carry, settings, stored, (start, wall, wandb_run) = _setup(args)
    except (ValueError, CheckpointError) as exc:  # MotionSetError, CheckpointError, SettingError, UsageError
        return cli.fail(exc)
    except OSError as exc:  # a run directory that cannot be written after all
        return cli.fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        cli.close_progress_bars()
        print("interrupted before training started; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    cfg = trainer.cfg
    log = TrainingLog(settings.run_dir, start_iteration=start, total_iterations=settings.iterations,
                      env_steps_per_iteration=cfg.ppo.num_envs * cfg.ppo.unroll_length, wall_offset=wall,
                      wandb_run=wandb_run)
    preset = settings.extra_meta["preset"]
    if preset in PRESETS:
        log.write(f"preset {preset}: {PRESETS[preset].summary}")
    log.write(f"{'resuming' if stored else 'starting'} {settings.run_dir}: {cfg.ppo.num_envs} envs x "
              f"{cfg.ppo.unroll_length} steps, MLPs {cfg.ppo.hidden_sizes}, impl {cfg.env.impl} on "
              f"{len(trainer.devices)} {trainer.devices[0].platform} device(s), {trainer.lib.num_motions} clips, "
              f"iterations {start} -> {settings.iterations}; the first call compiles (1-3 min on a CPU)")
    try:
        result = train_loop(trainer, carry, settings, log, start, Path(stored["checkpoint"]) if stored else None)
    finally:
        log.close()
    return _report(result, settings, log)


if __name__ == "__main__":
    code = main()
    if code == EXIT_INTERRUPTED:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping: more Ctrl-C must not cut JAX's exit clean-up
    sys.exit(code)
