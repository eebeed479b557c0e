"""Deterministic synthesis of the built-in motion clips (sets ``locomotion_basic``, ``dynamic_skills``,
``generalist`` = both, and ``long_benchmark``: all patterns chained into one clip of over two minutes).

Each clip is a pattern (footstep plan, swing-foot trajectories, a centre-of-mass plan from the linear
inverted pendulum, posture keyframes for arms and torso; ``gait.py``) turned into joint trajectories by
whole-body inverse kinematics on our model (``ik.py``), then into our clip format by forward kinematics
(``clip.make_clip``). Every clip starts with about a second of standing in (close to) the default
"knees bent" pose and ends standing in it. No randomness: ``synth --all`` reproduces the committed files.

CLI (``python -m mimic_jax.motions synth ...`` forwards here)::

    synth --all [--out-dir motions/clips --sets-dir motions/sets]
    synth NAME --out X.npz
    synth --list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion import sequence, skills
from mimic_jax.motion.clip import Clip, make_clip, save_clip
from mimic_jax.motion.ik import Targets, Weights, WholeBodyIK
from mimic_jax.motion.locomotion import Walk, repeat, stand_sway_targets, walk_targets

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIPS_DIR = REPO_ROOT / "motions" / "clips"
SETS_DIR = REPO_ROOT / "motions" / "sets"
QUANTUM = 2.0**-20  # the IK solution is rounded to this grid (about 1e-6 m or rad) before forward kinematics


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    motion_set: str
    description: str
    targets: Callable[[], Targets]
    weights: Weights = Weights()
    bounds: dict = dataclasses.field(default_factory=dict)  # quality bounds that differ from quality.BOUNDS


def _walk(*args, **kwargs) -> Callable[[], Targets]:
    return lambda: walk_targets(Walk(*args, **kwargs))


_SHUFFLE = dict(pattern="shuffle", toe_down=0.0, heel_off=0.0, arm_gain=0.0, height=0.05)
LOCO, SKILLS = "locomotion_basic", "dynamic_skills"
CLIPS: dict[str, ClipSpec] = {
    "stand_sway": ClipSpec(LOCO, "standing: weight sway side to side and back and forth, a dip, torso twist, arms",
                           stand_sway_targets),
    "walk_forward": ClipSpec(LOCO, "walk forward at 0.5 m/s: 13 steps of 0.25 m, 0.5 s each",
                             _walk(repeat((0.25, 0, 0), 13, 1), pelvis_drop=0.01), bounds={"joint_acc": 300.0}),
    "walk_forward_fast": ClipSpec(LOCO, "walk forward at 0.86 m/s: 20 steps of 0.3 m, 0.35 s each",
                                  _walk(repeat((0.3, 0, 0), 20, 2), period=0.35, double_support=0.03,
                                        pelvis_drop=0.01, height=0.07, lean=0.05),
                                  bounds={"joint_acc": 400.0}),
    "walk_backward": ClipSpec(LOCO, "walk backward at 0.3 m/s: 14 steps of 0.15 m",
                              _walk(repeat((-0.15, 0, 0), 14, 1), toe_down=0.0, heel_off=0.0, height=0.04)),
    "turn_left": ClipSpec(LOCO, "turn in place to the left: 180 degrees in 7 step pairs",
                          _walk(repeat((0, 0, np.pi / 7), 7), **_SHUFFLE)),
    "turn_right": ClipSpec(LOCO, "turn in place to the right: 180 degrees in 7 step pairs",
                           _walk(repeat((0, 0, -np.pi / 7), 7), **_SHUFFLE)),
    "side_step": ClipSpec(LOCO, "side steps: 4 x 0.08 m to the left, then 4 x 0.08 m to the right",
                          _walk(repeat((0, 0.08, 0), 4) + repeat((0, -0.08, 0), 4), **_SHUFFLE)),
    "squat": ClipSpec(SKILLS, skills.squat.__doc__.strip(), skills.squat),
    "lunge": ClipSpec(SKILLS, skills.lunge.__doc__.strip(), skills.lunge),
    "arm_wave": ClipSpec(SKILLS, skills.arm_wave.__doc__.strip(), skills.arm_wave),
    "kick": ClipSpec(SKILLS, skills.kick.__doc__.strip(), skills.kick),
    "jump_small": ClipSpec(SKILLS, skills.jump_small.__doc__.strip(), skills.jump_small,
                           bounds={"joint_acc": 400.0}),
    "crouch_walk": ClipSpec(SKILLS, skills.crouch_walk.__doc__.strip(), skills.crouch_walk,
                            bounds={"joint_acc": 200.0}),
}
LONG, GENERALIST = "long_benchmark", "generalist"
# The long clip: every built-in pattern once, in an order that turns back towards the start (see sequence.py).
LONG_ORDER = ("stand_sway", "walk_forward", "turn_left", "walk_forward_fast", "squat", "arm_wave", "turn_right",
              "crouch_walk", "kick", "side_step", "lunge", "walk_backward", "jump_small")
CLIPS[LONG] = ClipSpec(LONG, f"the {len(LONG_ORDER)} built-in patterns chained, each from where the last one "
                             "ended, with standing transitions: " + ", ".join(LONG_ORDER),
                       lambda: sequence.chain([(name, CLIPS[name].targets) for name in LONG_ORDER]),
                       bounds={"joint_acc": 400.0})
SET_DESCRIPTIONS = {
    LOCO: "Synthesized G1 locomotion: standing, walking forward/backward, turning, side steps.",
    SKILLS: "Synthesized G1 whole-body skills: squat, lunge, arm wave, kick, small jump, crouch walk.",
    LONG: f"Benchmark for long clips: one {len(LONG_ORDER)}-pattern synthesized clip of over two minutes.",
    GENERALIST: "Every short built-in clip (locomotion_basic and dynamic_skills), for one tracker of them all.",
}
SET_CLIPS = {LOCO: tuple(n for n, c in CLIPS.items() if c.motion_set == LOCO),
             SKILLS: tuple(n for n, c in CLIPS.items() if c.motion_set == SKILLS), LONG: (LONG,)}
SET_CLIPS[GENERALIST] = SET_CLIPS[LOCO] + SET_CLIPS[SKILLS]


def quantize(x: np.ndarray) -> np.ndarray:
    """Rounds to multiples of ``QUANTUM``: absorbs last-bit differences of sin/cos between machines (libm
    or SIMD variants), so the stored arrays come out identical everywhere with high probability. A binary
    grid (not 1e-6): keyframed values such as 0.3644065 are exact decimals and would sit on a 1e-6
    half-step; on this grid the scaling is exact and float32 stores the values exactly."""
    return np.round(x / QUANTUM) * QUANTUM


def synthesize(name: str, model: mujoco.MjModel | None = None, targets: Targets | None = None) -> Clip:
    """The built-in clip ``name`` (see ``CLIPS``), computed from scratch (from ``targets`` if given)."""
    if name not in CLIPS:
        raise KeyError(f"unknown clip {name!r}; known: {', '.join(CLIPS)}")
    spec = CLIPS[name]
    model = model if model is not None else g1.load_model()
    targets = targets if targets is not None else spec.targets()
    qpos = quantize(WholeBodyIK(model, spec.weights).solve(targets))
    return make_clip(qpos[:, :3], qpos[:, 3:7], qpos[:, 7:], source=f"synth:{name} (mimic_jax.motion.synth)",
                     model=model)


def write_sets(sets_dir: Path, clips_dir: Path) -> list[Path]:
    """One YAML per motion set listing its clips (those present in ``clips_dir``), paths relative to the YAML."""
    sets_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for set_name, description in SET_DESCRIPTIONS.items():
        names = [n for n in SET_CLIPS[set_name] if (clips_dir / f"{n}.npz").exists()]
        if not names:
            continue
        rel = Path(os.path.relpath(clips_dir.resolve(), sets_dir.resolve())).as_posix()
        lines = [f"name: {set_name}", f"description: {json.dumps(description)}", "clips:"]
        for n in names:
            lines += [f"  - path: {rel}/{n}.npz", "    weight: 1.0"]
        path = sets_dir / f"{set_name}.yaml"
        path.write_text("\n".join(lines) + "\n")
        out.append(path)
    return out


def synth_all(out_dir: Path = CLIPS_DIR, sets_dir: Path = SETS_DIR, names=None, log=print) -> list[Path]:
    """Regenerates every built-in clip into ``out_dir`` and the motion-set YAMLs into ``sets_dir``."""
    out_dir, sets_dir = Path(out_dir), Path(sets_dir)
    model = g1.load_model()
    paths = []
    for name in names or CLIPS:
        start = time.perf_counter()
        clip = synthesize(name, model)
        paths.append(save_clip(out_dir / f"{name}.npz", clip))
        log(f"{name}: {clip.duration:.2f} s, {time.perf_counter() - start:.1f} s to build -> {paths[-1]}")
    write_sets(sets_dir, out_dir)
    return paths


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synth", description="Synthesize the built-in motion clips.")
    parser.add_argument("name", nargs="?", help="one clip to build (see --list)")
    parser.add_argument("--all", action="store_true", help="rebuild every built-in clip and the set YAMLs")
    parser.add_argument("--out", type=Path, help="output .npz for NAME")
    parser.add_argument("--out-dir", type=Path, default=CLIPS_DIR)
    parser.add_argument("--sets-dir", type=Path, default=SETS_DIR)
    parser.add_argument("--list", action="store_true", help="list the built-in clips")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in CLIPS.items():
            print(f"{name:20s} {spec.motion_set:18s} {spec.description}")
        return 0
    if args.all:
        synth_all(args.out_dir, args.sets_dir)
        return 0
    if not args.name:
        parser.error("give a clip NAME or --all")
    if args.name not in CLIPS:
        parser.error(f"unknown clip {args.name!r}; known: {', '.join(CLIPS)}")
    out = args.out or args.out_dir / f"{args.name}.npz"
    clip = synthesize(args.name)
    print(f"{args.name}: {clip.duration:.2f} s -> {save_clip(out, clip)}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
