"""A small dataset in the collector's layout (``docs/phase2.md``, "Demonstration data") made from built-in
clips, without a tracker or physics: for tests and the CPU demo.

    python -m mimic_jax.diffusion.synthetic --out data/synthetic [--clips walk_forward,turn_left]

Every window of ``window`` steps (one per episode) is cut from a clip's reference kinematics every ``stride``
frames. The action and the label are the same smooth function of the motion: the normalized joint target
that names the NEXT reference pose, (q_{t+1} - q_default) / action_scale. No noise, no delay, no mirroring.
A real dataset comes from ``python -m mimic_jax.collect``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from mimic_jax import states as st
from mimic_jax.assets import g1

CLIPS_DIR = Path(__file__).resolve().parents[2] / "motions" / "clips"
_MEANINGS = {
    "body_pos_w": "tracked bodies' positions, world", "body_quat_w": "tracked bodies' orientations (w, x, y, z)",
    "body_lin_vel_w": "tracked bodies' linear velocities, world", "body_ang_vel_w": "angular velocities, world",
    "joint_pos": "joint positions", "joint_vel": "joint velocities",
    "action": "executed action (here equal to the label)", "label": "(q_{t+1} - q_default) / action_scale",
    "state_body_pos": "Body-Pos, global dims in the window's first-step frame", "state_joint_pos": "Joint-Pos",
    "motion_id": "clip index", "frame": "reference frame of step t", "episode": "episode id",
    "window_start": "first frame of the window", "delay": "action delay (0)", "noise_seed": "0",
    "mirrored": "False",
}


def _clip_arrays(name: str) -> dict:
    from mimic_jax.motion.clip import load_clip
    from mimic_jax.motion.library import build_library

    lib = build_library([load_clip(CLIPS_DIR / f"{name}.npz")], [name])
    return {"body_pos_w": lib.body_pos, "body_quat_w": lib.body_quat, "body_lin_vel_w": lib.body_lin_vel,
            "body_ang_vel_w": lib.body_ang_vel, "joint_pos": lib.joint_pos, "joint_vel": lib.joint_vel}


def _windows(arrays: dict, window: int, stride: int) -> dict:
    """[W, window, ...] slices of one clip every ``stride`` frames, with labels and frame numbers."""
    table = g1.joint_table()
    q = np.asarray(arrays["joint_pos"])
    label = ((q[np.minimum(np.arange(len(q)) + 1, len(q) - 1)] - table.default_pos) / table.action_scale)
    starts = np.arange(0, len(q) - window + 1, stride)
    index = starts[:, None] + np.arange(window)[None, :]
    out = {k: np.asarray(v, np.float32)[index] for k, v in arrays.items()}
    out["label"] = out["action"] = label.astype(np.float32)[index]
    out["frame"] = index.astype(np.int32)
    return out


def _encode(fields: dict) -> dict:
    """The two representations, global dims in the frame of each window's first step."""
    ws = st.WorldStates(*(fields[k] for k in st.WorldStates._fields))
    frame = st.character_frame(ws.body_pos_w[:, 0, st.ROOT], ws.body_quat_w[:, 0, st.ROOT])
    return {f"state_{name}": np.asarray(st.encode(name, ws, frame), np.float32) for name in st.LAYOUTS}


def _card(fields: dict, clips: list[str], window: int) -> dict:
    return {"format": "mimic_jax.demonstrations", "version": 1, "rate_hz": 50.0, "window_steps": window,
            "teacher": "synthetic: reference kinematics of built-in clips, no physics", "clips": clips,
            "windows": int(fields["episode"].shape[0]),
            "state_layouts": {name: [[n, s] for n, s in rep.parts] for name, rep in st.LAYOUTS.items()},
            "fields": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "meaning": _MEANINGS[k]}
                       for k, v in fields.items()}}


def write_synthetic(out, clips=("walk_forward", "turn_left"), *, window: int = 125, stride: int = 25,
                    replace: bool = False) -> Path:
    """Writes the dataset to ``out`` (a temporary directory renamed when complete; an existing ``out`` is
    refused unless ``replace``, and then swapped out only once the new one is complete); returns its path."""
    out = Path(out).resolve()
    if out.exists() and not replace:
        raise ValueError(f"{out} exists; pass --replace to overwrite it")
    parts = [(m, _windows(_clip_arrays(name), window, stride)) for m, name in enumerate(clips)]
    parts = [(m, p) for m, p in parts if len(p["frame"])]
    if not parts:
        raise ValueError(f"the clips {list(clips)} are shorter than one window of {window} steps")
    fields = {k: np.concatenate([p[k] for _, p in parts]) for k in parts[0][1]}
    fields.update(_encode(fields))
    n = len(fields["frame"])
    fields.update(motion_id=np.concatenate([np.full(len(p["frame"]), m, np.int32) for m, p in parts]),
                  episode=np.arange(n, dtype=np.int32), window_start=fields["frame"][:, 0].copy(),
                  delay=np.zeros(n, np.int8), noise_seed=np.zeros(n, np.uint32), mirrored=np.zeros(n, bool))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, value in fields.items():
            np.save(tmp / f"{name}.npy", value)
        (tmp / "card.json").write_text(json.dumps(_card(fields, list(clips), window), indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mimic_jax.diffusion.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clips", default="walk_forward,turn_left", help="comma-separated built-in clip names")
    p.add_argument("--window", type=int, default=125, help="steps per window (default 125 = 2.5 s)")
    p.add_argument("--stride", type=int, default=25, help="frames between window starts")
    p.add_argument("--replace", action="store_true", help="replace an existing --out")
    args = p.parse_args(argv)
    clips = [c.strip() for c in args.clips.split(",") if c.strip()]
    unknown = [c for c in clips if not (CLIPS_DIR / f"{c}.npz").is_file()]
    if unknown or not clips:
        known = ", ".join(sorted(f.stem for f in CLIPS_DIR.glob("*.npz")))
        print(f"error: --clips: unknown clip(s) {unknown or args.clips!r} (built-in: {known})", file=sys.stderr)
        return 2
    if args.window < 2 or args.stride < 1:
        print("error: --window must be >= 2 and --stride >= 1", file=sys.stderr)
        return 2
    try:
        path = write_synthetic(args.out, clips, window=args.window, stride=args.stride, replace=args.replace)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
