"""``python -m mimic_jax.control``: steer the phase-2 diffusion model with costs, watch it, benchmark it.

    python -m mimic_jax.control play --task obstacles --preview --video forest.mp4      # the scene, no model
    python -m mimic_jax.control play --task joystick --model MODEL --commands walk.yaml --video joy.mp4
    python -m mimic_jax.control play --task joystick --model MODEL --keyboard           # with a display
    python -m mimic_jax.control play --task waypoint --model MODEL --scene scene.json --video goal.mp4
    python -m mimic_jax.control bench --task all --model MODEL --episodes 50 --json bench.json --plots plots/

Tasks: perturb (walk + kicks), joystick, waypoint, obstacles, inpaint. ``bench`` runs every protocol of the
tasks (``control.protocols``) unguided and at each guidance weight of ``--weights`` (multiples of the task's
default weight) and reports each figure with a 95% interval. Every user error prints one ``error: ...`` line
and exits with code 2. See docs/phase2.md, "Guidance and control".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


class UsageError(ValueError):
    """A bad command line; one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="trained diffusion model (its directory)")
    p.add_argument("--layout", help="refuse a model trained on another state layout (body_pos or joint_pos)")
    p.add_argument("--seed", type=int, default=0, help="protocol episodes, noise and sampling (default 0)")
    p.add_argument("--impl", choices=("auto", "jax", "warp"), default="auto", help="MJX backend (auto: warp on GPU)")
    p.add_argument("--motion-set", default="locomotion_basic",
                   help="clips for the start poses and the inpainting protocol (default locomotion_basic)")


def build_parser() -> argparse.ArgumentParser:
    from mimic_jax.control.draw import VIEWS

    p = _Parser(prog="python -m mimic_jax.control", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    play = sub.add_parser("play", help="one episode in MuJoCo: a video (or the viewer) with the task drawn")
    play.add_argument("--task", required=True, help="perturb, joystick, waypoint, obstacles or inpaint")
    _common(play)
    play.add_argument("--preview", action="store_true", help="only the scene, the robot standing (no model)")
    play.add_argument("--commands", type=Path, help="joystick command file (YAML; see control.play)")
    play.add_argument("--keyboard", action="store_true", help="joystick from the keyboard in MuJoCo's viewer")
    play.add_argument("--scene", type=Path, help="waypoint/obstacles scene file (JSON; see control.scenes)")
    play.add_argument("--seconds", type=float, help="episode length (default: the task's protocol)")
    play.add_argument("--weight", type=float, help="guidance weight (default: the task's)")
    play.add_argument("--video", type=Path, help="mp4 (or .gif) of the episode")
    play.add_argument("--still", type=Path, help="PNG of one image of the episode (at --still-at)")
    play.add_argument("--still-at", type=float, default=0.0, help="time of the --still image, s (default 0)")
    play.add_argument("--view", choices=VIEWS, default=None, help="camera: follow the robot, or overview")
    play.add_argument("--video-size", default="640x360", help="width x height in pixels (default 640x360)")
    bench = sub.add_parser("bench", help="the protocols over seeded episodes: figures with 95%% intervals")
    bench.add_argument("--task", required=True, help="comma-separated tasks, or all")
    _common(bench)
    bench.add_argument("--episodes", type=int, default=50, help="episodes per task and weight (default 50)")
    bench.add_argument("--weights", default="0.5,1,2,4",
                       help="guidance weights as multiples of each task's default; 0 is always run (default 0.5,1,2,4)")
    bench.add_argument("--sim2sim", action="store_true", help="also run every protocol in MuJoCo C")
    bench.add_argument("--json", type=Path, help="write the report as JSON")
    bench.add_argument("--plots", type=Path, help="directory for one plot per task (figures against the weight)")
    bench.add_argument("--seconds", type=float,
                       help="cut every episode at this length (a quick check; the figures are then not the protocol's)")
    return p


def _tasks(text: str, many: bool) -> list[str]:
    from mimic_jax.control.protocols import TASKS

    names = list(TASKS) if many and text == "all" else [t.strip() for t in text.split(",")]
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise UsageError(f"--task: unknown task {unknown[0]!r} (tasks: {', '.join(TASKS)}"
                         f"{', or all' if many else ''})")
    if not many and len(names) != 1:
        raise UsageError("--task: play runs one task")
    return names


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise UsageError(f"--video-size must be WIDTHxHEIGHT, even and >= 16, e.g. 640x360, got '{text}'")
    return width, height


def _multiples(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not v > 0 or v != v or v == float("inf") for v in values):
        raise UsageError(f"--weights must be positive numbers separated by commas, e.g. 0.5,1,2, got '{text}'")
    return values


def _check_play(args) -> None:
    from mimic_jax.control.play import has_display

    task = _tasks(args.task, many=False)[0]
    if args.commands and task != "joystick":
        raise UsageError(f"--commands is for --task joystick, not {task}")
    if args.keyboard and task != "joystick":
        raise UsageError(f"--keyboard is for --task joystick, not {task}")
    if args.keyboard and args.commands:
        raise UsageError("--keyboard and --commands exclude each other")
    if args.keyboard and not has_display():
        raise UsageError("--keyboard needs a display (DISPLAY is not set here): use --commands FILE")
    if args.keyboard and (args.video or args.still):
        raise UsageError("--keyboard plays live in the viewer; --video and --still are for scripted episodes")
    for flag, path, suffixes in (("--video", args.video, (".mp4", ".gif")), ("--still", args.still, (".png",))):
        if path is not None and path.suffix.lower() not in suffixes:
            raise UsageError(f"{flag} must end in {' or '.join(suffixes)}, got {path.name}")
    if not args.preview and args.model is None:
        raise UsageError("play needs --model (or --preview to see the scene without a model)")
    if not args.keyboard and not (args.video or args.still):
        raise UsageError("play needs --video or --still (or --keyboard where there is a display)")
    if args.seconds is not None and not 0 < args.seconds <= 600:
        raise UsageError(f"--seconds must be in (0, 600], got {args.seconds}")
    if args.weight is not None and not args.weight >= 0:
        raise UsageError(f"--weight must be >= 0, got {args.weight}")
    if args.still_at < 0:
        raise UsageError(f"--still-at must be >= 0, got {args.still_at}")
    _size(args.video_size)


def _check_bench(args) -> None:
    _tasks(args.task, many=True)
    if not 1 <= args.episodes <= 100_000:
        raise UsageError(f"--episodes must be in 1..100000, got {args.episodes}")
    _multiples(args.weights)
    if args.seconds is not None and not 0 < args.seconds <= 600:
        raise UsageError(f"--seconds must be in (0, 600], got {args.seconds}")
    if args.model is None:
        raise UsageError("bench needs --model (a trained diffusion model directory)")


def _check_model(args) -> dict | None:
    """The model's card (None for a preview); refuses a model of another layout."""
    from mimic_jax import states as st
    from mimic_jax.control.model import check_layout, load_card

    if args.layout is not None and args.layout not in st.LAYOUTS:
        raise UsageError(f"--layout: unknown state layout {args.layout!r} (known: {', '.join(st.LAYOUTS)})")
    if args.model is None:
        return None
    card = load_card(args.model)
    check_layout(card, args.layout, where=str(args.model))
    return card


def _controller(args, card: dict):
    """The guided diffusion controller of ``card``'s model in MJX (a ``control.simulate.MJXSimulator``)."""
    try:
        import mimic_jax.diffusion  # noqa: F401
    except ImportError:
        raise UsageError(f"{args.model}: running a model needs the sampler package mimic_jax.diffusion, which "
                         "this checkout does not have") from None
    if "checkpoint" not in card:
        raise UsageError(f"{args.model}: a card.json alone is no model; give a mimic_jax.diffusion run directory")
    from mimic_jax.backend import BackendError, resolve_impl
    from mimic_jax.control.simulate import MJXSimulator
    from mimic_jax.diffusion.checkpoint import RunError, load_model

    try:
        impl = resolve_impl(args.impl)
        model, _ = load_model(card["checkpoint"])
    except (BackendError, RunError) as exc:
        raise UsageError(str(exc)) from None
    return MJXSimulator(model, _library(args.motion_set), impl=impl, seed=args.seed)


def _library(text: str):
    """The motion library of ``--motion-set`` (start poses; inpainting clips)."""
    from mimic_jax.motion.library import build_library
    from mimic_jax.motion.sets import MotionSetError, load_motion_set, resolve_motion_set

    try:
        loaded = load_motion_set(resolve_motion_set(text), progress=sys.stderr.isatty())
    except MotionSetError as exc:
        raise UsageError(f"--motion-set: {exc}") from None
    names = [name for name, _, _ in loaded]
    return build_library([clip for _, clip, _ in loaded], names)


def _bench_config(args):
    from mimic_jax.control.bench import BenchConfig

    return BenchConfig(episodes=args.episodes, seed=args.seed, weight_multiples=_multiples(args.weights),
                       max_seconds=args.seconds)


def _bench(args, card: dict) -> None:
    import time

    import jax
    from tqdm import tqdm

    from mimic_jax.control import bench as B

    from mimic_jax.control.simulate import MuJoCoSimulator

    sim = _controller(args, card)
    cfg = _bench_config(args)
    names = [v for t in _tasks(args.task, many=True) for v in B.VARIANTS[t]]
    total = sum(len(B.weights(name.split("/")[0], cfg)) for name in names)

    def bench_on(simulator, label: str) -> dict:
        with tqdm(total=total, desc=f"control bench ({label})", unit="run", disable=None) as bar:
            return B.run(names, simulator, cfg, simulator.starts(cfg.episodes), sim.lib,
                         progress=lambda name, w: (bar.set_postfix_str(f"{name} w={w:g}"), bar.update(1)))

    t0 = time.perf_counter()
    report = bench_on(sim, "MJX")
    print(B.format_table(report))
    sim2sim = None
    if args.sim2sim:
        sim2sim = bench_on(MuJoCoSimulator(sim.model, sim.lib, seed=args.seed, progress=sys.stderr.isatty()),
                           "MuJoCo C")
        print("MuJoCo C (sim2sim):\n" + B.format_table(sim2sim))
    device = jax.devices()[0]
    doc = {"command": "python -m mimic_jax.control " + " ".join(sys.argv[1:]), "model": str(args.model),
           "checkpoint": card.get("checkpoint"), "layout": card.get("layout"), "episodes": cfg.episodes,
           "seed": cfg.seed, "max_seconds": cfg.max_seconds, "simulator": f"MJX ({sim.env.cfg.impl})",
           "device": f"{device.platform}: {device.device_kind}", "date": time.strftime("%Y-%m-%d %H:%M"),
           "seconds": round(time.perf_counter() - t0, 1), "tasks": report,
           **({} if sim2sim is None else {"sim2sim": {"simulator": "MuJoCo C", "tasks": sim2sim}})}
    if args.json:
        print(f"wrote {B.write_json(doc, args.json)}")
    if args.plots:
        for path in B.plot(report, args.plots):
            print(f"wrote {path}")


def _play(args, card: dict) -> None:
    import dataclasses

    from mimic_jax.control import draw
    from mimic_jax.control.play import episode_video, load_commands, play_batch

    sim = _controller(args, card)
    cfg = _bench_config(argparse.Namespace(episodes=1, seed=args.seed, weights="1", seconds=None))
    task = _tasks(args.task, many=False)[0]
    commands = load_commands(args.commands) if args.commands else None
    batch = play_batch(task, cfg, sim.starts(1), sim.lib, commands=commands, scene_file=args.scene,
                       seconds=args.seconds)
    weight = cfg.guidance.weight(task) if args.weight is None else args.weight
    rec = sim(batch, weight)
    video = episode_video(batch, rec, 0, plans=sim.plans[:, 0], title=f"{batch.name}, guidance weight {weight:g}")
    video = dataclasses.replace(video, plans=None if weight == 0 else video.plans)
    width, height = _size(args.video_size)
    view = args.view or ("overview" if video.goal is not None else "follow")
    if args.video:
        print(f"wrote {draw.write_task_video([video], args.video, width=width, height=height, view=view)}")
    if args.still:
        t = min(int(round(args.still_at * 50)), len(video.qpos) - 1)
        print(f"wrote {draw.still(video, t, args.still, width=width, height=height, view=view)}")


def _preview(args) -> None:
    from mimic_jax.control import draw
    from mimic_jax.control.play import preview

    task = _tasks(args.task, many=False)[0]
    video = preview(task, seed=args.seed, scene_file=args.scene, seconds=args.seconds or 2.0)
    width, height = _size(args.video_size)
    view = args.view or ("overview" if video.goal is not None else "follow")
    if args.video:
        print(f"wrote {draw.write_task_video([video], args.video, width=width, height=height, view=view)}")
    if args.still:
        t = min(int(round(args.still_at * 50)), len(video.qpos) - 1)
        print(f"wrote {draw.still(video, t, args.still, width=width, height=height, view=view)}")


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 2 user error)."""
    from mimic_jax.control.model import ModelError
    from mimic_jax.control.play import CommandError
    from mimic_jax.control.protocols import ProtocolError
    from mimic_jax.control.scenes import SceneError
    from mimic_jax.motion.viz import RenderError

    try:
        args = build_parser().parse_args(argv)
        if args.command == "play":
            _check_play(args)
        else:
            _check_bench(args)
        card = _check_model(args)
        if args.command == "play" and args.scene:
            from mimic_jax.control.play import episode_scene

            episode_scene(args.task, scene_file=args.scene)
        if args.command == "play" and args.commands:
            from mimic_jax.control.play import load_commands

            load_commands(args.commands)
        if args.command == "play" and args.preview:
            _preview(args)
            return 0
        if args.command == "play" and args.keyboard:
            raise UsageError("--keyboard: the live viewer is not wired to the controller yet; use --commands FILE")
        (_play if args.command == "play" else _bench)(args, card)
    except (UsageError, ModelError, SceneError, CommandError, ProtocolError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
