"""Training logs: a tqdm progress bar, TensorBoard scalars, ``metrics.jsonl`` and ``learning_curve.png``.

One record per logged iteration holds ``iteration``, ``env_steps``, ``wall_s``, every scalar metric of the
trainer (``reward/<term>``, ``termination/<name>``, losses, ``learning_rate``, ``action_std`` ...) and the
adaptive sampler's statistics as ``sampler/<clip>/<stat>`` (per clip) and ``sampler/<stat>`` (whole set).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "learning_curve.png"
TENSORBOARD_DIR = "tensorboard"
CURVES = (("rollout/reward_per_step", "reward per step"), ("episode/length", "episode length (steps)"),
          ("episode/failure_rate", "failure rate"))


def flatten_sampler(stats: dict, names) -> dict[str, float]:
    """``sampler_metrics`` output -> ``{'sampler/<clip>/<stat>': x, 'sampler/<stat>': y}``."""
    out = {}
    for stat, value in stats.items():
        value = np.asarray(value)
        if value.ndim == 0:
            out[f"sampler/{stat}"] = float(value)
        else:
            out.update({f"sampler/{name}/{stat}": float(v) for name, v in zip(names, value)})
    return out


def read_records(path: Path, up_to: int | None = None) -> list[dict]:
    """Records of a ``metrics.jsonl`` (those with ``iteration <= up_to`` if given); bad lines are skipped."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if up_to is None or record.get("iteration", 0) <= up_to:
                records.append(record)
    return records


class TrainingLog:
    """Writes every sink for one run; on resume, drops records after the restored iteration."""

    def __init__(self, run_dir, *, start_iteration: int, total_iterations: int, env_steps_per_iteration: int,
                 wall_offset: float = 0.0, wandb_run=None):
        from tensorboardX import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.run_dir / METRICS_FILE
        self.records = read_records(self.jsonl, start_iteration)
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        self.writer = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR),
                                    purge_step=start_iteration + 1 if start_iteration else None)
        self.steps_per_iteration = env_steps_per_iteration
        self.wall_offset = wall_offset
        self.wandb_run = wandb_run
        self.t_start = self.t_last = time.monotonic()
        self.last_iteration = start_iteration
        self.bar = tqdm(total=total_iterations, initial=start_iteration, unit="it", dynamic_ncols=True,
                        desc="compiling")

    def wall_s(self) -> float:
        """Seconds of training so far, including earlier sessions of a resumed run."""
        return self.wall_offset + time.monotonic() - self.t_start

    def log(self, iteration: int, metrics: dict, sampler: dict | None = None, seconds: float | None = None) -> dict:
        """Records one iteration's scalars everywhere and advances the progress bar.

        ``seconds``: time the training call took (for env-steps/s); default: time since the last record.
        """
        now = time.monotonic()
        seconds = now - self.t_last if seconds is None else seconds
        record = {"iteration": int(iteration), "env_steps": int(iteration * self.steps_per_iteration),
                  "wall_s": round(self.wall_s(), 3)}
        record.update({k: float(v) for k, v in metrics.items()})
        record.update(sampler or {})
        steps_per_s = (iteration - self.last_iteration) * self.steps_per_iteration / max(seconds, 1e-9)
        record["perf/env_steps_per_s"] = steps_per_s
        self.records.append(record)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if key != "iteration" and np.isfinite(value):
                self.writer.add_scalar(key, value, iteration)
        if self.wandb_run is not None:
            self.wandb_run.log(record, step=int(iteration))
        self.bar.set_description("training")
        self.bar.set_postfix_str(f"{steps_per_s:,.0f} env-steps/s, ep len {record.get('episode/length', 0):.1f}, "
                                 f"fail {record.get('episode/failure_rate', 0):.2f}")
        self.bar.update(iteration - self.last_iteration)
        self.t_last, self.last_iteration = now, iteration
        return record

    def write(self, message: str) -> None:
        """A line of text that does not break the progress bar."""
        self.bar.write(message)

    def plot(self) -> Path:
        """``learning_curve.png``: reward per step, episode length and failure rate vs env steps and wall time."""
        return plot_learning_curve(self.records, self.run_dir / CURVE_FILE)

    def close(self) -> None:
        """Flushes TensorBoard and closes the progress bar."""
        self.bar.close()
        self.writer.close()


class SilentLog:
    """The log of processes other than 0 in a group: same interface, writes nothing (process 0 logs the run)."""

    def __init__(self, run_dir, *, start_iteration: int, wall_offset: float = 0.0, **_):
        self.wall_offset = wall_offset
        self.t_start = time.monotonic()

    def wall_s(self) -> float:
        return self.wall_offset + time.monotonic() - self.t_start

    def log(self, *args, **kwargs) -> dict:
        return {}

    def write(self, message: str) -> None:
        pass

    def plot(self) -> None:
        pass

    def close(self) -> None:
        pass


def plot_learning_curve(records: list[dict], path: Path) -> Path:
    """Two rows of curves (x = env steps, x = wall time), written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(CURVES), figsize=(4.2 * len(CURVES), 6.4), squeeze=False)
    for col, (key, label) in enumerate(CURVES):
        # Episode statistics exist only for iterations in which some episode ended.
        rows = [r for r in records if key in r and (not key.startswith("episode/") or r.get("episode/count", 1) > 0)]
        for row, (x_key, x_label) in enumerate((("env_steps", "env steps"), ("wall_s", "wall time (s)"))):
            ax = axes[row, col]
            ax.plot([r[x_key] for r in rows], [r[key] for r in rows], lw=1.5)
            ax.set_xlabel(x_label)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    fig.suptitle(f"learning curve ({len(records)} logged iterations)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path
