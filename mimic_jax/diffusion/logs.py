"""Training logs of a diffusion run: a tqdm bar, TensorBoard scalars, ``metrics.jsonl`` and ``loss_curve.png``.

One record per jitted call: ``step``, ``wall_s``, ``loss`` (and its ``loss_state`` / ``loss_action`` parts),
``grad_norm``, ``learning_rate``, ``ema_decay``, ``val/loss`` (EMA weights, held-out episodes) and
``perf/steps_per_s``. On resume, records after the restored step are dropped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss_curve.png"


def read_records(path: Path, up_to: int | None = None) -> list[dict]:
    """Records of a ``metrics.jsonl`` with ``step <= up_to`` (all if None); unreadable lines are skipped."""
    from mimic_jax.training_log import read_records as read_all

    return [r for r in read_all(path) if up_to is None or r.get("step", 0) <= up_to]


class RunLog:
    def __init__(self, run_dir, *, start_step: int, total_steps: int, wall_offset: float = 0.0):
        from tensorboardX import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.run_dir / METRICS_FILE
        self.records = read_records(self.jsonl, start_step)
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        purge = start_step + 1 if start_step else None
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        self.wall_offset, self.t_start = wall_offset, time.monotonic()
        self.last_step = start_step
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, desc="compiling")

    def wall_s(self) -> float:
        return self.wall_offset + time.monotonic() - self.t_start

    def log(self, step: int, metrics: dict, seconds: float) -> dict:
        record = {"step": int(step), "wall_s": round(self.wall_s(), 3), **{k: float(v) for k, v in metrics.items()}}
        record["perf/steps_per_s"] = (step - self.last_step) / max(seconds, 1e-9)
        self.records.append(record)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if key != "step" and np.isfinite(value):
                self.writer.add_scalar(key, value, step)
        val = f", val {record['val/loss']:.4f}" if "val/loss" in record else ""
        self.bar.set_description("training")
        self.bar.set_postfix_str(f"loss {record['loss']:.4f}{val}, {record['perf/steps_per_s']:.1f} steps/s")
        self.bar.update(step - self.last_step)
        self.last_step = step
        return record

    def write(self, message: str) -> None:
        self.bar.write(message)

    def plot(self) -> Path:
        """``loss_curve.png``: training and validation loss against steps (written atomically)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        for key, label in (("loss", "training (online weights)"), ("val/loss", "validation (EMA weights)")):
            rows = [r for r in self.records if key in r]
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=label)
        ax.set(xlabel="optimizer step", ylabel="x0 MSE (normalized)", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = self.run_dir / CURVE_FILE
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
