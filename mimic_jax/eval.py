"""``python -m mimic_jax.eval``: evaluate a trained policy (metrics, sim-to-sim, video, ONNX export).

    python -m mimic_jax.eval --run runs/locomotion_basic-20260101-120000 --json eval.json --plots plots/
    python -m mimic_jax.eval --checkpoint RUN/checkpoints/3000 --motion-set dynamic_skills   # generalization
    python -m mimic_jax.eval --run RUN --mode robust --episodes 8 --csv robust.csv
    python -m mimic_jax.eval --run RUN --sim2sim --video eval.mp4 --export-onnx policy.onnx
    python -m mimic_jax.eval --run RUN --suite mismatch --sim2sim --json mismatch.json --plots plots/

``clean`` (default): every clip once from frame 0 to its end, mean action, no noise, pushes or
randomization. ``robust``: the training conditions, random start frames, ``--episodes`` per clip. See
``docs/evaluation.md``. Every user error prints one ``error: ...`` line and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mimic_jax import cli
from mimic_jax.cli import EXIT_USAGE, UsageError  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module doc)."""
    p = cli.ArgumentParser(prog="python -m mimic_jax.eval", description=__doc__.split("\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="run directory (its latest checkpoint)")
    which.add_argument("--checkpoint", type=Path, help="one checkpoint directory (RUN/checkpoints/<iteration>)")
    p.add_argument("--motion-set", help="set name, YAML or comma-separated clips (default: the run's own set)")
    p.add_argument("--mode", choices=("clean", "robust"), default="clean",
                   help="clean: frame 0, no noise (default); robust: training conditions, random starts")
    p.add_argument("--episodes", type=int, default=5, help="episodes per clip in robust mode (default 5)")
    p.add_argument("--seed", type=int, default=0, help="robust mode: start frames, noise, randomization, pushes")
    p.add_argument("--impl", choices=("auto", "jax", "warp"), default="auto", help="MJX backend (auto: warp on GPU)")
    p.add_argument("--json", type=Path, help="write the full report as JSON")
    p.add_argument("--csv", type=Path, help="write one row per clip (and engine) as CSV")
    p.add_argument("--plots", type=Path, help="directory for one per-frame error plot per clip")
    p.add_argument("--video", type=Path, help="mp4 (or .gif) of every clip, reference as a ghost")
    p.add_argument("--video-clips", help="comma-separated clips to put in the video (default: all)")
    p.add_argument("--video-size", default="640x360", help="video width x height in pixels (default 640x360)")
    p.add_argument("--video-fps", type=int, default=25, help="video frames per second, at most 50 (default 25)")
    p.add_argument("--sim2sim", action="store_true", help="also run the policy on MuJoCo C and report both")
    p.add_argument("--suite", choices=("mismatch",), help="mismatch: every clip under the standard model "
                   "perturbations (evaluation/mismatch.py; --episodes per clip where pushes act)")
    p.add_argument("--export-onnx", type=Path, help="write the actor (normalizer included) as ONNX")
    p.add_argument("--onnx-motion", help="clip whose reference the ONNX also outputs (BeyondMimic deployment form)")
    p.add_argument("--export-only", action="store_true", help="only export (with --export-onnx), no evaluation")
    return p


def _check_args(args) -> None:
    """Every flag on its own, before anything is loaded (outputs included: an unwritable place is refused now)."""
    from mimic_jax.backend import resolve_impl

    if args.episodes < 1:
        raise UsageError(f"--episodes must be positive, got {args.episodes}")
    resolve_impl(args.impl)
    for flag, path, kind in (("--json", args.json, "file"), ("--csv", args.csv, "file"),
                             ("--video", args.video, "file"), ("--plots", args.plots, "directory")):
        if path is not None:
            cli.check_writable(path, flag, kind=kind)
    if args.export_only and not args.export_onnx:
        raise UsageError("--export-only needs --export-onnx")
    if args.onnx_motion and not args.export_onnx:
        raise UsageError("--onnx-motion needs --export-onnx")
    if args.video and args.video.suffix.lower() not in (".mp4", ".gif"):
        raise UsageError(f"--video must end in .mp4 or .gif, got {args.video.name}")
    _video_size(args.video_size)
    if not 0 < args.video_fps <= 50:
        raise UsageError(f"--video-fps must be in 1..50, got {args.video_fps}")
    if args.suite and (args.mode != "clean" or args.video or args.export_only):
        raise UsageError("--suite mismatch has its own protocol: it takes no --mode robust, --video or --export-only")


def _video_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360); refuses sizes the encoders cannot take."""
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise UsageError(f"--video-size must be WIDTHxHEIGHT, even and >= 16, e.g. 640x360, got '{text}'")
    return width, height


def _library(args, run):
    """(library, set text, generalization?) of the evaluated set; refuses a changed training set."""
    from mimic_jax.checkpoint import CheckpointError, check_compatible, model_hash
    from mimic_jax.motion.library import build_library, library_fingerprint
    from mimic_jax.motion.sets import MotionSetError, load_motion_set, resolve_motion_set

    text = args.motion_set or run.motion_set
    try:
        spec = resolve_motion_set(text)
    except MotionSetError:
        fallback = run.meta.get("run", {}).get("motion_set_resolved")
        if args.motion_set or not fallback:
            raise
        spec = resolve_motion_set(fallback)
    clips = load_motion_set(spec, progress=sys.stderr.isatty())
    lib = build_library([c for _, c, _ in clips], [name for name, _, _ in clips])
    same = tuple(lib.names) == tuple(run.motion_names) and library_fingerprint(lib) == run.fingerprint
    if not args.motion_set or same:
        check_compatible({**run.meta, "checkpoint": str(run.checkpoint)}, lib)
    elif run.meta.get("model_hash") != model_hash():
        raise CheckpointError(f"{run.checkpoint}: trained on another robot model")
    return lib, text, not same


def _video_names(args, lib) -> list[str]:
    """The clips of ``--video-clips`` (all by default); refuses names not in the set."""
    names = [n.strip() for n in args.video_clips.split(",")] if args.video_clips else list(lib.names)
    unknown = [n for n in names if n not in lib.names]
    if unknown:
        raise UsageError(f"--video-clips: {', '.join(unknown)} not in the set ({', '.join(lib.names)})")
    return names


def _run_info(run) -> dict:
    return {"run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint), "iteration": run.iteration,
            "env_steps": run.env_steps, "training_motion_set": run.motion_set,
            "training_motions": list(run.motion_names), "fingerprint": run.fingerprint}


def _evaluate(args, run, policy, lib, text: str, generalization: bool) -> dict:
    from mimic_jax.evaluation import report as rep
    from mimic_jax.backend import resolve_impl
    from mimic_jax.evaluation.rollout import eval_env_config, mjx_episodes, one_hot_rows

    impl = resolve_impl(args.impl)
    cfg = eval_env_config(policy.env_cfg, args.mode, impl)
    episodes = 1 if args.mode == "clean" else args.episodes
    print(f"MJX ({impl}), {args.mode} mode: {lib.num_motions} clips x {episodes} episode(s); the first call "
          "compiles (about a minute on a CPU)", file=sys.stderr)
    engines = {"mjx": mjx_episodes(policy, lib, mode=args.mode, episodes=episodes, seed=args.seed, impl=impl)}
    if args.sim2sim:
        from mimic_jax.evaluation.sim2sim import mujoco_episodes

        if args.mode != "clean":
            print("note: sim2sim runs the clean protocol (frame 0, no noise) whatever --mode says", file=sys.stderr)
        engines["mujoco"] = mujoco_episodes(policy, lib, progress=sys.stderr.isatty())
    evaluation = {"mode": args.mode, "motion_set": text, "motions": list(lib.names),
                  "generalization": generalization, "episodes_per_clip": episodes, "seed": args.seed, "impl": impl,
                  "control_dt": cfg.control_dt, "sim2sim_protocol": "clean" if args.sim2sim else None,
                  "one_hot": dict(zip(lib.names, one_hot_rows(policy, lib.names)[1]))}
    report = rep.build_report(_run_info(run), evaluation, engines, lib.names, lib.clip_length, cfg.control_dt)
    return {"report": report, "engines": engines, "control_dt": cfg.control_dt}


def _outputs(args, result: dict, lib) -> None:
    from mimic_jax.evaluation import report as rep

    report = result["report"]
    print(rep.format_table(report))
    if args.json:
        print(f"wrote {rep.write_json(report, args.json)}")
    if args.csv:
        print(f"wrote {rep.write_csv(report, args.csv)}")
    if args.plots:
        paths = rep.plot_all(result["engines"], lib.names, args.plots, result["control_dt"])
        print(f"wrote {len(paths)} plots to {args.plots}")
    if args.video:
        from mimic_jax.evaluation import video

        width, height = _video_size(args.video_size)
        segs = video.segments(result["engines"]["mjx"], lib, _video_names(args, lib))
        print(f"wrote {video.write_video(segs, args.video, width=width, height=height, fps=args.video_fps)}")


def _check_export(args, lib) -> None:
    """Before any evaluation: the --onnx-motion clip exists and the --export-onnx place can be written."""
    from mimic_jax.export.actor import ExportError
    from mimic_jax.export.writer import check_destination

    if args.onnx_motion and args.onnx_motion not in lib.names:
        raise UsageError(f"--onnx-motion {args.onnx_motion}: not a clip of the set ({', '.join(lib.names)})")
    if args.export_onnx:
        try:
            check_destination(args.export_onnx)
        except ExportError as exc:
            raise UsageError(f"--export-onnx {exc}") from None


def _export(args, policy, lib) -> None:
    """The ONNX, its deploy.yaml and the robot model, side by side (mimic_jax.export.writer)."""
    from mimic_jax.evaluation.rollout import one_hot_rows
    from mimic_jax.export.writer import export_deployment

    _check_export(args, lib)
    one_hot = one_hot_rows(policy, [args.onnx_motion])[0][0] if args.onnx_motion else None
    paths = export_deployment(args.export_onnx, policy, lib=lib, motion=args.onnx_motion, one_hot=one_hot)
    print(f"wrote {', '.join(str(p) for p in paths)}")


def _header(run, lib, text: str, generalization: bool) -> str:
    line = (f"{run.checkpoint}: iteration {run.iteration}, {run.env_steps} env steps, trained on "
            f"'{run.motion_set}' ({len(run.motion_names)} clips); evaluating '{text}' ({lib.num_motions} clips)")
    if generalization:
        line += ("\ngeneralization check: this set differs from the training set; clips not in the training set "
                 "get the normalizer-mean one-hot")
    return line


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 2 user error)."""
    from mimic_jax.checkpoint import CheckpointError, load_run
    from mimic_jax.evaluation.rollout import policy_from_run
    from mimic_jax.motion.viz import RenderError

    try:
        args = build_parser().parse_args(argv)
        _check_args(args)
        run = load_run(args.run or args.checkpoint)
        policy = policy_from_run(run)
        lib, text, generalization = _library(args, run)
        print(_header(run, lib, text, generalization))
        _video_names(args, lib)
        _check_export(args, lib)
        if args.suite:
            from mimic_jax.evaluation import mismatch_suite

            mismatch_suite.main(args, _run_info(run), policy, lib, text, generalization)
        elif not args.export_only:
            _outputs(args, _evaluate(args, run, policy, lib, text, generalization), lib)
        if args.export_onnx:
            _export(args, policy, lib)
    except (ValueError, CheckpointError, RenderError) as exc:  # UsageError, MotionSetError, PolicyError, ...
        return cli.fail(exc)
    except OSError as exc:
        return cli.fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        cli.close_progress_bars()
        print("interrupted", file=sys.stderr)
        return cli.EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
