"""The reference motion a deployed policy tracks: from a clip file, or from the ONNX's own tables.

A clip file is our ``.npz`` (docs/formats.md) read with numpy; its joint names must be ``deploy.yaml``'s
``joints.names`` in that order and its fps ``motion.fps``; the tracked bodies are picked by name. The ONNX
deployment form (exported with ``--onnx-motion``) holds one clip: all its frames come from one batched call
of the graph with ``time_step = 0 .. frames - 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from mimic_jax.deploy.config import DeployError
from mimic_jax.deploy.controller import RefFrame

ONNX_OUTPUTS = {"joint_pos": "joint_pos", "joint_vel": "joint_vel", "body_pos": "body_pos_w",
                "body_quat": "body_quat_w", "body_lin_vel": "body_lin_vel_w", "body_ang_vel": "body_ang_vel_w"}
# The clip file stores the same arrays under the same names (all 30 bodies instead of the tracked ones).
CLIP_FIELDS = ("joint_names", "body_names", "fps") + tuple(ONNX_OUTPUTS.values())


class Reference(NamedTuple):
    """Every frame of one clip: joints [T, J], tracked bodies [T, B, 3|4] (``bodies.tracked`` order)."""

    name: str
    source: str
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    body_pos: np.ndarray
    body_quat: np.ndarray
    body_lin_vel: np.ndarray
    body_ang_vel: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.joint_pos.shape[0])

    def frame(self, t: int) -> RefFrame:
        return RefFrame(*(getattr(self, f)[t] for f in RefFrame._fields))


def _first_mismatch(got: list[str], want: list[str]) -> str:
    i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    a, b = (got[i] if i < len(got) else "nothing"), (want[i] if i < len(want) else "nothing")
    return f"position {i}: {a} vs {b}"


def from_clip_file(path: Path, config: dict, name: str | None = None) -> Reference:
    """The reference of a clip file; refuses other joints, missing bodies or another frame rate."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in CLIP_FIELDS if k in data}
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: not a readable .npz clip ({exc.__class__.__name__})") from None
    missing = [k for k in CLIP_FIELDS if k not in arrays]
    if missing:
        raise DeployError(f"{path}: not a mimic_jax clip (missing {', '.join(missing)})")
    joints, want = [str(n) for n in arrays["joint_names"]], list(config["joints"]["names"])
    if joints != want:
        raise DeployError(f"{path}: its joints are not deploy.yaml's joints.names ({_first_mismatch(joints, want)})")
    if abs(float(arrays["fps"]) - float(config["motion"]["fps"])) > 1e-6:
        raise DeployError(f"{path}: clip at {float(arrays['fps']):g} fps, the policy runs at "
                          f"{config['motion']['fps']:g}")
    bodies = [str(n) for n in arrays["body_names"]]
    absent = [b for b in config["bodies"]["tracked"] if b not in bodies]
    if absent:
        raise DeployError(f"{path}: no tracked body {', '.join(absent)} in the clip")
    rows = [bodies.index(b) for b in config["bodies"]["tracked"]]
    out = {k: np.asarray(arrays[v], np.float64) for k, v in ONNX_OUTPUTS.items() if k.startswith("joint")}
    out.update({k: np.asarray(arrays[v], np.float64)[:, rows] for k, v in ONNX_OUTPUTS.items()
                if k.startswith("body")})
    return Reference(name=name or path.stem, source=str(path), **out)


def from_onnx(session, config: dict, path: Path) -> Reference:
    """The clip inside a deployment-form ONNX, every frame."""
    exported = config["motion"]["exported"]
    frames = int(exported["frames"])
    feed = {config["policy"]["input"]: np.zeros((frames, config["observation"]["size"]), np.float32),
            config["policy"]["time_step_input"]: np.arange(frames, dtype=np.float32)[:, None]}
    values = session.run(list(ONNX_OUTPUTS.values()), feed)
    out = {k: np.asarray(v, np.float64) for k, v in zip(ONNX_OUTPUTS, values)}
    return Reference(name=exported["name"], source=f"{path} (reference outputs)", **out)
