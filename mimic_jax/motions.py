"""Motion files and motion sets from the command line.

    python -m mimic_jax.motions import SRC [SRC ...] --out DST.npz|DIR [--format auto|csv|beyondmimic|named]
                                       [--fps 30] [--frames A:B] [--joint-order auto|isaac|mujoco]
    python -m mimic_jax.motions list
    python -m mimic_jax.motions show SET
    python -m mimic_jax.motions validate SET [--quality]
    python -m mimic_jax.motions plot CLIP --out x.png
    python -m mimic_jax.motions render CLIP --out x.mp4|x.gif [--frame N (writes a PNG)]
    python -m mimic_jax.motions synth ...          (forwarded to mimic_jax.motion.synth)

SET is a set name, a set YAML or a comma-separated list of motion files; CLIP is any importable motion
file. User errors print one ``error: ...`` line and exit with code 2; ``validate`` exits 1 on problems.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from mimic_jax import cli
from mimic_jax.cli import EXIT_USAGE, UsageError
from mimic_jax.motion.clip import CLIP_FPS, JOINT_LIMIT_SLACK, Clip, MotionFileError, save_clip

EXIT_PROBLEMS = 1


def _frames_arg(text: str) -> tuple[int | None, int | None]:
    """'A:B', 'A:' or ':B' -> (start, end)."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return tuple(int(p) if p.strip() else None for p in parts)  # type: ignore[return-value]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B (input frames, end excluded), got '{text}'") from None


def _progress(items, desc: str):
    """A tqdm bar when there is more than one item."""
    if len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", leave=False, file=sys.stderr)


def import_targets(sources: list[Path], out: Path) -> list[Path]:
    """The output file of each source; refuses, before anything is read, an output that is not ``.npz``,
    one that is its own input (the source would be replaced) and two inputs writing the same output."""
    many = len(sources) > 1 or out.suffix == ""
    targets = [out / f"{src.stem}.npz" if many else out for src in sources]
    for src, target in zip(sources, targets):
        if cli.same_file(src, target) or src.resolve() == target.resolve():
            raise UsageError(f"--out {target} is the input {src}: importing would replace the source; "
                             "write elsewhere")
    if not many and out.suffix.lower() != ".npz":
        raise UsageError(f"--out {out}: a clip file ends in .npz (or give a folder for several inputs)")
    cli.check_writable(out, "--out", kind="directory" if many else "file")
    clash = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clash:
        raise UsageError(f"--out: several inputs would write {', '.join(clash)} (same file stem)")
    return targets


def _cmd_import(args) -> int:
    from mimic_jax.motion.formats import import_motion

    sources = [Path(src) for src in args.src]
    targets = import_targets(sources, args.out)
    for src, out in _progress(list(zip(sources, targets)), "importing"):
        clip = import_motion(src, format=args.format, input_fps=args.fps, joint_order=args.joint_order,
                             frame_range=args.frames)
        save_clip(out, clip)
        print(f"{out}: {clip.num_frames} frames, {clip.duration:.2f} s ({clip.source})")
    return 0


def _cmd_list(args) -> int:
    from mimic_jax.motion.sets import list_motion_sets, resolve_motion_set, set_seconds, sets_dir

    names = list_motion_sets()
    if not names:
        print(f"no motion sets in {sets_dir()}")
        return 0
    print(f"{'set':24s} {'clips':>5s} {'seconds':>8s}  description")
    broken = 0
    for name in names:
        try:
            spec = resolve_motion_set(name)
            print(f"{name:24s} {len(spec.entries):5d} {set_seconds(spec):8.1f}  {spec.description}")
        except MotionFileError as exc:
            broken += 1
            print(f"{name:24s} error: {exc}")
    return EXIT_PROBLEMS if broken else 0


def _cmd_show(args) -> int:
    from mimic_jax.motion.sets import entry_num_frames, resolve_motion_set

    spec = resolve_motion_set(args.set)
    print(f"{spec.name}: {spec.description}" + (f" ({spec.source})" if spec.source else ""))
    if spec.sampler:
        print("sampler overrides: " + ", ".join(f"{k}={v}" for k, v in spec.sampler.items()))
    print(f"{'clip':24s} {'frames':>7s} {'seconds':>8s} {'weight':>6s}  source")
    total = 0
    for e in spec.entries:
        n = entry_num_frames(spec, e)
        total += n
        span = "" if e.frames is None else f" [{e.frames[0]}:{'' if e.frames[1] is None else e.frames[1]}]"
        print(f"{e.label:24s} {n:7d} {n / CLIP_FPS:8.2f} {e.weight:6.2f}  {e.path}{span}")
    print(f"{'total':24s} {total:7d} {total / CLIP_FPS:8.2f}")
    return 0


def clip_problems(clip: Clip, *, quality: bool = False) -> list[str]:
    """Readable problems of a loaded clip: non-finite values, joints far outside their range (and, with
    ``quality``, the plausibility checks of :mod:`mimic_jax.motion.quality`)."""
    from mimic_jax.assets import g1

    problems = [f"{name} contains NaN or inf" for name in ("root_pos", "root_quat", "joint_pos", "joint_vel",
                                                          "body_pos_w", "body_quat_w", "body_lin_vel_w",
                                                          "body_ang_vel_w")
                if not np.all(np.isfinite(getattr(clip, name)))]
    table = g1.joint_table()
    over = np.maximum(table.lower - clip.joint_pos, clip.joint_pos - table.upper)
    if np.any(over > JOINT_LIMIT_SLACK):
        t, j = np.unravel_index(int(np.argmax(over)), over.shape)
        problems.append(f"joint {g1.JOINT_NAMES[j]} is {over[t, j]:.3f} rad outside its range at frame {t}")
    if quality and not problems:
        from mimic_jax.motion.quality import check_clip_quality

        problems += check_clip_quality(clip)
    return problems


def _cmd_validate(args) -> int:
    from mimic_jax.motion.sets import load_entry, resolve_motion_set

    spec = resolve_motion_set(args.set)
    failed = 0
    for entry in _progress(spec.entries, f"validating {spec.name}"):
        try:
            clip = load_entry(spec, entry)
            problems = clip_problems(clip, quality=args.quality)
        except MotionFileError as exc:
            clip, problems = None, [str(exc)]
        failed += bool(problems)
        size = f"{clip.num_frames} frames" if clip is not None else "not loaded"
        print(f"{'OK  ' if not problems else 'FAIL'} {entry.label} ({size})")
        for problem in problems:
            print(f"     {problem}")
    print(f"{spec.name}: {len(spec.entries) - failed} of {len(spec.entries)} clips OK")
    return EXIT_PROBLEMS if failed else 0


def _cmd_plot(args) -> int:
    from mimic_jax.motion.formats import import_motion
    from mimic_jax.motion.viz import plot_clip

    print(plot_clip(import_motion(args.clip, frame_range=args.frames), args.out))
    return 0


def _cmd_render(args) -> int:
    from mimic_jax.motion.formats import import_motion
    from mimic_jax.motion.viz import render_clip, render_frame

    clip = import_motion(args.clip, frame_range=args.frames)
    if args.frame is not None:
        print(render_frame(clip, args.frame, args.out, width=args.width, height=args.height))
    else:
        print(render_clip(clip, args.out, width=args.width, height=args.height, fps=args.fps))
    return 0


def _cmd_synth(argv: list[str]) -> int:
    try:
        from mimic_jax.motion import synth
    except ModuleNotFoundError as exc:
        if exc.name != "mimic_jax.motion.synth":
            raise
        print("error: the clip synthesizer (mimic_jax.motion.synth) is not installed in this checkout",
              file=sys.stderr)
        return EXIT_USAGE
    return int(synth.cli(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every command but ``synth`` (whose arguments go to its own parser)."""
    parser = cli.ArgumentParser(prog="python -m mimic_jax.motions", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import", help="convert motion files to clip files (50 fps, forward kinematics)")
    p.add_argument("src", nargs="+", help="CSV / npz motion files")
    p.add_argument("--out", type=Path, required=True, help="output .npz (a folder for several inputs)")
    p.add_argument("--format", default="auto", choices=("auto", "clip", "csv", "beyondmimic", "named"))
    p.add_argument("--fps", type=float, default=None, help="input frame rate of a CSV (default 30)")
    p.add_argument("--frames", type=_frames_arg, default=None, help="A:B input frames to keep, B excluded")
    p.add_argument("--joint-order", default="auto", choices=("auto", "isaac", "mujoco"),
                   help="joint order of a BeyondMimic npz (default: detected by forward kinematics)")
    sub.add_parser("list", help="motion sets with clip count and total seconds")
    for name, text in (("show", "the clips of a motion set"), ("validate", "load and check every clip of a set")):
        p = sub.add_parser(name, help=text)
        p.add_argument("set", help="set name, set YAML, or comma-separated motion files")
        if name == "validate":
            p.add_argument("--quality", action="store_true", help="also run the plausibility checks")
    p = sub.add_parser("plot", help="joint curves, foot heights and COM support of a clip (PNG)")
    p.add_argument("clip")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frames", type=_frames_arg, default=None, help="A:B frames to plot")
    p = sub.add_parser("render", help="kinematic playback (mp4, gif, or one frame as PNG)")
    p.add_argument("clip")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frame", type=int, default=None, help="render only this 50 fps frame, as a PNG")
    p.add_argument("--frames", type=_frames_arg, default=None, help="A:B frames to play")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=int, default=25, help="video frame rate")
    sub.add_parser("synth", help="build the built-in clips (arguments go to mimic_jax.motion.synth)",
                   add_help=False)
    return parser


COMMANDS = {"import": _cmd_import, "list": _cmd_list, "show": _cmd_show, "validate": _cmd_validate,
            "plot": _cmd_plot, "render": _cmd_render}


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns the exit code (0 ok, 1 problems found, 2 usage or input error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["synth"]:
        return _cmd_synth(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return cli.fail(exc)
    from mimic_jax.motion.viz import RenderError

    with warnings.catch_warnings():
        warnings.showwarning = _print_warning
        try:
            return COMMANDS[args.command](args)
        except (MotionFileError, RenderError, UsageError, OSError) as exc:
            return cli.fail(exc)
        except KeyboardInterrupt:
            cli.close_progress_bars()
            print("interrupted", file=sys.stderr)
            return cli.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
