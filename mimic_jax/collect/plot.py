"""A figure of a few recorded windows: root path, joint trajectories, executed action vs the teacher's label.

    python -m mimic_jax.collect plot DATA --out docs/img/demonstrations.png --windows 3
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from mimic_jax import states
from mimic_jax.assets import g1
from mimic_jax.collect.shards import Dataset

JOINTS = ("left_hip_pitch_joint", "left_knee_joint", "left_shoulder_pitch_joint")


def pick_windows(dataset: Dataset, count: int) -> list[int]:
    """Up to ``count`` original (not mirrored) windows, one per clip first, in clip order."""
    motion, mirrored = np.asarray(dataset["motion_id"]), np.asarray(dataset["mirrored"])
    chosen: list[int] = []
    for clip in np.unique(motion):
        hits = np.nonzero((motion == clip) & ~mirrored)[0]
        if hits.size:
            chosen.append(int(hits[0]))
    rest = [i for i in np.nonzero(~mirrored)[0] if i not in chosen]
    return (chosen + rest)[:count]


def _column(axes, dataset: Dataset, w: int, rate: float) -> None:
    s = np.asarray(dataset["state_body_pos"][w])
    t = np.arange(s.shape[0]) / rate
    root = s[:, states.BODY_POS.slice("root_pos")]
    axes[0].plot(root[:, 0], root[:, 1], color="k")
    axes[0].plot(root[:1, 0], root[:1, 1], "o", color="k")
    axes[0].set_aspect("equal", adjustable="datalim")
    axes[0].set_xlabel("x in first-step frame (m)")
    joint_pos, action, label = (np.asarray(dataset[f][w]) for f in ("joint_pos", "action", "label"))
    for n, name in enumerate(JOINTS):
        j = g1.JOINT_NAMES.index(name)
        color = f"C{n}"
        axes[1].plot(t, joint_pos[:, j], color=color, label=name.replace("_joint", ""))
        axes[2].plot(t, action[:, j], color=color, lw=1.0, label="executed" if n == 0 else None)
        axes[2].plot(t, label[:, j], color=color, lw=1.8, ls="--", label="teacher label" if n == 0 else None)
    axes[1].set_xlabel("t (s)")
    axes[2].set_xlabel("t (s)")


def plot_windows(dataset: Dataset, out: Path, count: int = 3) -> Path:
    """Writes the figure atomically; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = pick_windows(dataset, count)
    if not chosen:
        raise ValueError(f"{dataset.path}: no window to plot")
    clips = [c["name"] for c in dataset.card["clips"]]
    fig, axes = plt.subplots(3, len(chosen), figsize=(4.2 * len(chosen), 8.4), squeeze=False)
    for col, w in enumerate(chosen):
        _column(axes[:, col], dataset, w, float(dataset.card["control_hz"]))
        axes[0, col].set_title(f"{clips[int(dataset['motion_id'][w])]} (episode {int(dataset['episode'][w])}, "
                               f"delay {int(dataset['delay'][w])})", fontsize=10)
    axes[0, 0].set_ylabel("root y (m)")
    axes[1, 0].set_ylabel("joint position (rad)")
    axes[2, 0].set_ylabel("action (normalized)")
    axes[1, 0].legend(fontsize=8)
    axes[2, 0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
