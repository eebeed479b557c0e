"""``python -m mimic_jax.collect``: demonstration data from a trained tracker (BeyondMimic phase 2).

    python -m mimic_jax.collect --out data/generalist            # the default teacher: --pretrained generalist
    python -m mimic_jax.collect --run runs/RUN --motion-set locomotion_basic --out data/loco --max-delay 2 --mirror
    python -m mimic_jax.collect info data/generalist
    python -m mimic_jax.collect plot data/generalist --out demonstrations.png

Runs the teacher under its training conditions plus Ornstein-Uhlenbeck action noise (and optional action
delay), keeps the first 2.5 s of every 5 s episode that does not fall, and writes one ``.npy`` per field plus a
card (see ``docs/phase2.md``). On a GPU the default is 1M frames; on a CPU a small demo. Every user error
prints one ``error: ...`` line and exits with code 2; a teacher that falls too often exits with code 1; either
way, and on Ctrl-C, nothing is left at ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from mimic_jax.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError  # noqa: F401
from mimic_jax.cli import ArgumentParser as _Parser


def build_parser() -> argparse.ArgumentParser:
    from mimic_jax.collect import pretrained
    from mimic_jax.collect.config import CollectConfig

    d = CollectConfig()
    p = _Parser(prog="python -m mimic_jax.collect", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="subcommands: `info DATA` prints a dataset's card; `plot DATA --out PNG` plots a few windows")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", type=Path, help="the teacher: a training run directory (its latest checkpoint)")
    which.add_argument("--pretrained", metavar="NAME", help=f"the teacher: a shipped tracker (default "
                       f"{pretrained.DEFAULT}; known: {', '.join(sorted(pretrained.REGISTRY))})")
    p.add_argument("--motion-set", help="clips to collect on: the teacher's own clips (default: its training set)")
    p.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    p.add_argument("--replace", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--frames", type=int, help="accepted frames to keep, mirror copies not counted (default 1M on a "
                   "GPU, a 2000-frame demo on a CPU)")
    p.add_argument("--num-envs", type=int, help="episodes per chunk (default 8192 on a GPU, 4 on a CPU)")
    p.add_argument("--window-seconds", type=float, default=d.windows.window_seconds, help="kept per episode")
    p.add_argument("--run-seconds", type=float, default=d.windows.run_seconds,
                   help="run per episode; episodes that fall before are rejected")
    p.add_argument("--noise-theta", type=float, default=d.noise.theta, help="OU mean reversion per control step")
    p.add_argument("--noise-sigma", type=float, default=d.noise.sigma, help="OU noise scale, normalized action "
                   "units (0: no noise)")
    p.add_argument("--max-delay", type=int, default=d.max_delay, help="action delay drawn per episode from 0.."
                   "this many control steps (default 0: none)")
    p.add_argument("--mirror", action="store_true", help="also keep each window's sagittal mirror copy")
    p.add_argument("--teacher-obs", action="store_true", help="also keep the teacher's actor observation")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--impl", choices=("auto", "jax", "warp"), default="auto", help="MJX backend (auto: warp on GPU)")
    return p


def collect_config(args, backend: str):
    """The command line -> CollectConfig (CPU defaults: a small demo)."""
    from mimic_jax.collect.config import CPU_FRAMES, CPU_NUM_ENVS, CollectConfig
    from mimic_jax.collect.noise import OUConfig
    from mimic_jax.collect.windows import WindowConfig

    gpu = backend == "gpu"
    for name in ("frames", "num_envs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    base = CollectConfig()
    cfg = CollectConfig(frames=args.frames or (base.frames if gpu else CPU_FRAMES),
                        num_envs=args.num_envs or (base.num_envs if gpu else CPU_NUM_ENVS),
                        windows=WindowConfig(window_seconds=args.window_seconds, run_seconds=args.run_seconds),
                        noise=dataclasses.replace(OUConfig(), theta=args.noise_theta, sigma=args.noise_sigma),
                        max_delay=args.max_delay, mirror=args.mirror, teacher_obs=args.teacher_obs, seed=args.seed)
    cfg.check()
    return cfg


def _setup(argv):
    """(args, config, teacher): every user error is a ValueError with one line, raised before any compiling."""
    import jax

    from mimic_jax.collect import pretrained
    from mimic_jax.collect.shards import check_target
    from mimic_jax.collect.teacher import load_teacher

    args = build_parser().parse_args(argv)
    backend = jax.default_backend()
    if args.impl == "warp" and backend != "gpu":
        raise UsageError(f"--impl warp needs a GPU (JAX's backend here is {backend}); use --impl jax")
    cfg = collect_config(args, backend)
    check_target(args.out, args.replace)
    name = args.pretrained or (None if args.run else pretrained.DEFAULT)
    teacher = load_teacher(run=args.run, pretrained_name=name, motion_set=args.motion_set)
    cfg.windows.steps(teacher.policy.env_cfg.control_dt)  # the window must fit the run
    return args, cfg, teacher


def _collect(args, cfg, teacher, argv) -> int:
    import jax

    from mimic_jax.collect.driver import collect, make_plan

    plan = make_plan(teacher, cfg, args.impl)
    demo = "" if jax.default_backend() == "gpu" or args.frames else " (a CPU demo; pass --frames for more)"
    print(f"collecting {plan.target} windows x {plan.window_steps} steps{demo} from {teacher.run.run_dir} on "
          f"{teacher.lib.num_motions} clips: {cfg.num_envs} envs per chunk, impl {plan.env.cfg.impl}, OU sigma "
          f"{cfg.noise.sigma:g}, delay 0..{cfg.max_delay}{', mirrored' if cfg.mirror else ''}", file=sys.stderr)
    out = collect(teacher, cfg, args.out, impl=args.impl, replace=args.replace, progress=sys.stderr.isatty(),
                  command="python -m mimic_jax.collect " + shlex.join(argv))
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def _info(argv) -> int:
    from mimic_jax.collect.card import markdown
    from mimic_jax.collect.shards import open_dataset

    p = _Parser(prog="python -m mimic_jax.collect info", description="print a dataset's card")
    p.add_argument("data", type=Path)
    args = p.parse_args(argv)
    dataset = open_dataset(args.data)  # checks every field against the card
    print(f"{dataset.path}\n")
    print(markdown(dataset.card), end="")
    return EXIT_OK


def _plot(argv) -> int:
    from mimic_jax.collect.plot import plot_windows
    from mimic_jax.collect.shards import open_dataset

    p = _Parser(prog="python -m mimic_jax.collect plot", description="plot a few windows of a dataset")
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--windows", type=int, default=3, help="windows to plot, one per clip first (default 3)")
    args = p.parse_args(argv)
    if args.windows < 1:
        raise UsageError(f"--windows must be positive, got {args.windows}")
    if args.out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--out must end in .png, .svg or .pdf, got {args.out.name}")
    print(f"wrote {plot_windows(open_dataset(args.data), args.out, args.windows)}", file=sys.stderr)
    return EXIT_OK


SUBCOMMANDS = {"info": _info, "plot": _plot}


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 1 the teacher fell too often, 2 user error, 130 Ctrl-C)."""
    from mimic_jax.collect.config import CollectionError
    from mimic_jax.collect.shards import DatasetError

    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        if argv[:1] and argv[0] in SUBCOMMANDS:
            return SUBCOMMANDS[argv[0]](argv[1:])
        setup = _setup(argv)
    except ValueError as exc:  # UsageError, DatasetError, TeacherError, CheckpointError, MotionSetError, ...
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted before collecting: nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        return _collect(*setup, argv)
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DatasetError as exc:  # the target appeared while collecting
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CollectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
