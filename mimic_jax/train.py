"""``python -m mimic_jax.train``: train a motion-tracking policy on a motion set.

    python -m mimic_jax.train --motion-set locomotion_basic             # GPU: full size; CPU: a quick demo
    python -m mimic_jax.train --motion-set walk.npz,run.npz --set ppo.learning_rate=3e-4
    python -m mimic_jax.train --resume runs/locomotion_basic-20260101-120000
    python -m mimic_jax.train --motion-set locomotion_basic --processes 2   # one process per GPU (fastest)
    srun --ntasks-per-node=8 --gpus-per-task=1 python -m mimic_jax.train ... --distributed   # several hosts

Outputs in the run directory: ``checkpoints/<iteration>/`` (Orbax), ``metrics.jsonl``, ``tensorboard/`` and
``learning_curve.png``. See ``docs/training.md``. Every user error prints one ``error: ...`` line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import time
from pathlib import Path

from mimic_jax import cli, distributed
from mimic_jax.checkpoint import (CheckpointError, check_compatible, config_from_dict, config_to_dict,
                                  discard_after, latest_checkpoint, read_meta, remove_partial_writes, restore_carry, run_meta,
                                  save_run)
from mimic_jax.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError  # noqa: F401

ENV_RUN_DIR_FILE = "MIMIC_JAX_RUN_DIR_FILE"  # where process 0 tells the --processes launcher its run directory
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
    p.add_argument("--devices", type=int, help="local devices one process drives (0: all)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--processes", type=int, help="one process per local GPU, N of them (jax.distributed): "
                                                      "faster than --devices N with MJX-Warp")
    group.add_argument("--distributed", action="store_true",
                       help="this process is one of several started by SLURM srun or with JAX_COORDINATOR_ADDRESS, "
                            "JAX_NUM_PROCESSES and JAX_PROCESS_ID set (several hosts); see docs/training.md")
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
    devices = jax.device_count() if jax.process_count() > 1 else args.devices  # a group uses all its devices
    top = {"seed": args.seed, "num_devices": devices, "iterations_per_call": args.iterations_per_call}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in top.items() if v is not None})
    cfg = apply_settings(cfg, args.settings)
    resolve_impl(cfg.env.impl)  # also after --set env.impl=warp
    visible = len(jax.devices()) if jax.process_count() > 1 else len(jax.local_devices())
    if cfg.num_devices > visible:
        raise UsageError(f"--devices {cfg.num_devices}: only {visible} {backend} device(s) here")
    _check_layout(cfg, cfg.num_devices or visible)
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


def _join(args) -> None:
    """Joins the process group of ``--processes`` (this is a child) or of ``--distributed`` (another launcher)."""
    try:
        distributed.initialize(external=args.distributed)
    except Exception as exc:  # noqa: BLE001 -- jax.distributed raises RuntimeError/ValueError from its C++ client
        reason = " ".join(str(exc).split())[:200]
        raise UsageError(f"--distributed: could not join the process group ({reason})") from None


def _processes() -> str:
    import jax

    return f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; dotted config flags (``--ppo.learning-rate 3e-4``) join the ``--set`` overrides."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.settings = cli.dotted_settings(extra, parser.prog) + args.settings
    return args


def plan_run(args):
    """Command line -> (TrainConfig, RunSettings, spec, stored meta or None); raises one-line user errors."""
    import jax

    _positive(args, "num_envs", "iterations", "env_steps", "iterations_per_call", "checkpoint_every", "keep",
              "devices")
    if jax.process_count() > 1 and args.devices is not None:
        raise UsageError("--devices with several processes: each process drives its own GPU(s); drop --devices")
    if args.out is not None:
        cli.check_writable(args.out, "--out", kind="directory")
    stored = read_meta(args.resume) if args.resume else None
    text, spec = _motion_set(args, stored)
    cfg, preset = _config(args, stored, spec)
    run = (stored or {}).get("run", {})
    processes = jax.process_count()
    if stored is not None and run.get("processes", 1) != processes:
        flag = f"--processes {run.get('processes', 1)}" if run.get("processes", 1) > 1 else "no --processes"
        raise UsageError(f"{stored['checkpoint']}: trained by {run.get('processes', 1)} process(es), resumed by "
                         f"{processes}; resume it with {flag}")
    if stored is not None:
        run_dir = Path(stored["checkpoint"]).parent.parent
        if args.out and args.out.resolve() != run_dir:
            raise UsageError(f"--out {args.out} differs from the resumed run {run_dir}; drop --out")
        cli.check_writable(run_dir, "--resume", kind="directory")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(distributed.agreed_int(int(time.time()))))
        run_dir = (args.out or Path("runs") / f"{spec.name}-{stamp}").resolve()
        if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
            raise UsageError(f"{run_dir} already holds checkpoints; continue it with --resume {run_dir}")
        cli.check_writable(run_dir, "--out", kind="directory")
    steps = cfg.ppo.num_envs * cfg.ppo.unroll_length
    iterations = args.iterations or (math.ceil(args.env_steps / steps) if args.env_steps else None)
    defaults = PRESETS.get(preset, PRESETS["demo"])
    iterations = iterations or run.get("iterations") or defaults.iterations
    every = args.checkpoint_every or run.get("checkpoint_every") or defaults.checkpoint_every
    extra = {"preset": preset, "iterations": iterations, "checkpoint_every": every,
             "motion_set_resolved": _resolved(spec), "processes": processes}
    settings = RunSettings(run_dir=run_dir, iterations=iterations, checkpoint_every=every,
                           keep=args.keep or run.get("keep") or 5, motion_set=text, extra_meta=extra)
    return cfg, settings, spec, stored


def _save(trainer, carry, settings: RunSettings, log) -> Path:
    iteration = int(trainer.local_train_state(carry).iteration)
    meta = run_meta(trainer.lib, settings.motion_set, iteration,
                    iteration * trainer.cfg.ppo.num_envs * trainer.cfg.ppo.unroll_length,
                    run={**settings.extra_meta, "keep": settings.keep}, wall_s=log.wall_s())
    path = save_run(settings.run_dir, trainer.placement.saved(carry), trainer.cfg, meta, keep=settings.keep)
    log.plot()
    return path


def _savable(trainer, carry) -> bool:
    """The carry still exists (not donated to an unfinished call) and its parameters are finite."""
    import jax
    import numpy as np

    leaves = jax.tree.leaves(carry)
    if any(getattr(x, "is_deleted", lambda: False)() for x in leaves):
        return False
    params = jax.device_get(trainer.local_train_state(carry).params)
    return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def train_loop(trainer, carry, settings: RunSettings, log, start: int, last_saved: Path | None = None) -> LoopResult:
    """Runs until ``settings.iterations``; checkpoints every ``checkpoint_every`` and at the end.

    Non-finite parameters or an overflowed MJX-Warp buffer stop the run without saving (the last good
    checkpoint stays); Ctrl-C saves the current state if it is usable. With several processes every process
    runs this loop in step: Ctrl-C is noted and all of them stop, save and return after the same iteration.
    """
    import jax

    if jax.process_count() > 1:
        with distributed.StopFlag() as stop:
            return _loop(trainer, carry, settings, log, start, last_saved, stop)
    return _loop(trainer, carry, settings, log, start, last_saved, None)


def _stopped(trainer, carry, settings, log, iteration, checkpoint) -> LoopResult:
    """Ctrl-C: saves the current state if it is usable (Ctrl-C is ignored meanwhile)."""
    if _savable(trainer, carry):
        log.write("interrupted: saving the current state (Ctrl-C is ignored until it is written)")
        with cli.ignored_interrupts():
            checkpoint = _save(trainer, carry, settings, log)
        iteration = int(Path(checkpoint).name)
    return LoopResult(carry, iteration, EXIT_INTERRUPTED, checkpoint)


def _loop(trainer, carry, settings: RunSettings, log, start: int, last_saved, stop) -> LoopResult:
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
            if stop is not None and stop.agreed():
                return _stopped(trainer, carry, settings, log, iteration, checkpoint)
    except KeyboardInterrupt:
        return _stopped(trainer, carry, settings, log, iteration, checkpoint)
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


def _note(message: str) -> None:
    """A line on stderr from process 0 only (every process of a group meets the same notes and errors)."""
    if distributed.process_index() == 0:
        print(message, file=sys.stderr)


def _setup(args):
    """Plans the run, loads the motions, builds the trainer and its state (fresh or restored)."""
    import jax

    from mimic_jax.motion.library import build_library
    from mimic_jax.motion.sets import load_motion_set
    from mimic_jax.ppo.trainer import Trainer

    cfg, settings, spec, stored = plan_run(args)
    primary = jax.process_index() == 0
    if primary and os.environ.get(ENV_RUN_DIR_FILE):  # for the launcher's message if a process dies
        Path(os.environ[ENV_RUN_DIR_FILE]).write_text(str(settings.run_dir))
    for path in remove_partial_writes(settings.run_dir):
        _note(f"note: removed {path}, a checkpoint write that did not finish")
    wandb_run = _wandb(args.wandb and primary, cfg, settings)
    clips = load_motion_set(spec, progress=primary and sys.stderr.isatty())
    lib = build_library([c for _, c, _ in clips], [name for name, _, _ in clips])
    if stored is not None:
        check_compatible(stored, lib)  # before building the trainer: a wrong set fails in seconds
    trainer = Trainer(cfg, lib, clip_weights=[w for _, _, w in clips])
    if stored is not None:
        carry, meta = restore_carry(stored["checkpoint"], trainer)
        start, wall = int(meta["iteration"]), float(meta.get("wall_s", 0.0))
        later = discard_after(settings.run_dir, start)  # this run goes on from ``start``: later steps are stale
        if later:
            _note(f"note: removed checkpoints {', '.join(map(str, later))}, later than the resumed {start}")
    else:
        carry, start, wall = trainer.init(), 0, 0.0
    jax.block_until_ready(carry)  # donating buffers that are still being written can hang the CPU runtime
    return trainer, carry, settings, stored, (start, wall, wandb_run)


def _report(result: LoopResult, settings: RunSettings, log) -> int:
    resume = f"python -m mimic_jax.train --resume {settings.run_dir}"
    if result.status == EXIT_FAILED:
        kept = (f"last good checkpoint: {result.checkpoint}" if result.checkpoint else "no checkpoint was saved")
        _fail(f"{result.message}; stopped without saving that state ({kept})", EXIT_FAILED)
    elif result.status == EXIT_INTERRUPTED:
        where = f"saved {result.checkpoint}" if result.checkpoint else "nothing new saved"
        _note(f"interrupted at iteration {result.iteration}: {where}; continue with: {resume}")
    else:
        log.write(f"done: {result.iteration} iterations ({log.wall_s():.0f} s of training in all); "
                  f"run directory {settings.run_dir}")
    return result.status


def _fail(exc, code: int = EXIT_USAGE) -> int:
    """``cli.fail`` on process 0; the others only return the code."""
    return cli.fail(exc, code) if distributed.process_index() == 0 else code


def _launch(args, argv) -> int:
    """``--processes N``: this process starts N copies of the command (one per GPU) and waits for them; if one
    dies, the others are stopped and one line says where the run can continue."""
    import tempfile

    argv = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="mimic_jax-") as tmp:
        run_file = Path(tmp) / "run_dir"
        try:
            outcome = distributed.supervise([sys.executable, "-m", "mimic_jax.train", *argv], args.processes,
                                            extra_env={ENV_RUN_DIR_FILE: str(run_file)})
        except ValueError as exc:  # fewer GPUs than processes
            return cli.fail(exc)
        run_dir = Path(run_file.read_text()) if run_file.is_file() else None
    i = outcome.first_failed
    if i is None or (outcome.codes[i] in (EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED) and i == 0):
        return outcome.code  # done, or process 0 has said why
    kept = latest_checkpoint(run_dir) if run_dir else None
    where = (f"last good checkpoint {kept}; continue with: python -m mimic_jax.train --resume {run_dir} "
             f"--processes {args.processes}" if kept else "no checkpoint was saved")
    return cli.fail(f"process {i} of {args.processes} stopped ({outcome.describe(i)}); stopped the others; {where}",
                    EXIT_FAILED)


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 1 NaN parameters, Warp overflow or a lost process, 2 user error,
    130 Ctrl-C)."""
    from mimic_jax.training_log import SilentLog, TrainingLog

    try:
        args = parse_args(argv)
        _positive(args, "processes")
        if args.processes and args.processes > 1 and not distributed.is_child():
            if args.devices is not None:
                raise UsageError("--devices with --processes: each process drives one GPU; drop --devices")
            return _launch(args, argv)
        _join(args)
        trainer, carry, settings, stored, (start, wall, wandb_run) = _setup(args)
    except (ValueError, CheckpointError) as exc:  # MotionSetError, CheckpointError, SettingError, UsageError
        return _fail(exc)
    except OSError as exc:  # a run directory that cannot be written after all
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        cli.close_progress_bars()
        _note("interrupted before training started; nothing saved")
        return EXIT_INTERRUPTED
    cfg = trainer.cfg
    sink = TrainingLog if distributed.process_index() == 0 else SilentLog
    log = sink(settings.run_dir, start_iteration=start, total_iterations=settings.iterations,
               env_steps_per_iteration=cfg.ppo.num_envs * cfg.ppo.unroll_length, wall_offset=wall,
               wandb_run=wandb_run)
    preset = settings.extra_meta["preset"]
    if preset in PRESETS:
        log.write(f"preset {preset}: {PRESETS[preset].summary}")
    log.write(f"{'resuming' if stored else 'starting'} {settings.run_dir}: {cfg.ppo.num_envs} envs x "
              f"{cfg.ppo.unroll_length} steps, MLPs {cfg.ppo.hidden_sizes}, impl {cfg.env.impl} on "
              f"{len(trainer.devices)} {trainer.devices[0].platform} device(s){_processes()}, "
              f"{trainer.lib.num_motions} clips, "
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
