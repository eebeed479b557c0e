"""Evaluation reports: the JSON document, a CSV of every clip, the printed table and per-frame error plots.

JSON layout (every key always present; ``engines`` has ``mujoco`` only with sim-to-sim)::

    {"run": {...}, "evaluation": {...}, "metrics": {name: definition},
     "engines": {"mjx": {"aggregate": {...}, "clips": {clip: {...}}}, "mujoco": {...}}}

Clip and aggregate entries carry ``SUMMARY_FIELDS`` plus ``terminations`` (counts by name).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from mimic_jax.evaluation.metrics import SUMMARY_FIELDS, TRACKED_MAX_DRIFT_M, Episodes, summarize

DEFINITIONS = {
    "success_rate": "fraction of episodes that reached the clip end with no termination",
    "tracked_rate": (f"fraction of episodes with no termination and the anchor (torso_link) within "
                     f"{TRACKED_MAX_DRIFT_M} m of the reference horizontally at every frame"),
    "max_drift_m": "mean over episodes of the largest horizontal anchor distance from the reference, m",
    "mean_episode_length_s": "mean control time played per episode (termination or clip end), seconds",
    "mpjpe_global_mm": "mean over frames and the 14 tracked bodies of the world-position error, mm",
    "mpjpe_local_mm": "as mpjpe_global_mm after subtracting each side's anchor (torso_link) position, mm",
    "joint_pos_error_rad": "mean over frames and the 29 joints of |q - q_ref|, rad",
    "joint_vel_error_rad_s": "mean over frames and the 29 joints of |dq - dq_ref|, rad/s",
    "ee_pos_error_mm": "mean over frames and the 4 end effectors (ankles, wrists) of the world-position error, mm",
    "anchor_pos_error_mm": "mean over frames of the anchor (torso_link) world-position error, mm",
    "anchor_ori_error_rad": "mean over frames of the anchor's rotation-angle error, rad",
    "anchor_xy_error_mm": "mean over frames of the anchor's horizontal (x, y) world-position error, mm",
}
COLUMNS = (("success_rate", "succ", "{:5.0%}"), ("tracked_rate", "track", "{:5.0%}"),
           ("max_drift_m", "drift m", "{:7.2f}"), ("mean_episode_length_s", "len s", "{:6.2f}"),
           ("mpjpe_global_mm", "MPJPE-g", "{:8.1f}"), ("mpjpe_local_mm", "MPJPE-l", "{:8.1f}"),
           ("joint_pos_error_rad", "q rad", "{:6.3f}"), ("joint_vel_error_rad_s", "dq rad/s", "{:8.3f}"),
           ("ee_pos_error_mm", "EE mm", "{:7.1f}"), ("anchor_pos_error_mm", "anc mm", "{:7.1f}"),
           ("anchor_ori_error_rad", "anc rad", "{:7.3f}"))


def engine_section(episodes: Episodes, names, clip_lengths, control_dt: float) -> dict:
    """{"aggregate": ..., "clips": ...} of one engine's episodes."""
    per_clip, total = summarize(episodes, names, clip_lengths, control_dt)
    return {"aggregate": total, "clips": per_clip}


def build_report(run: dict, evaluation: dict, engines: dict[str, Episodes], names, clip_lengths,
                 control_dt: float) -> dict:
    """The whole JSON document (see the module doc)."""
    return {"run": run, "evaluation": evaluation, "metrics": dict(DEFINITIONS),
            "engines": {k: engine_section(v, names, clip_lengths, control_dt) for k, v in engines.items()}}


def _clean(x):
    """NaN/inf -> None (strict JSON), numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.generic,)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def _atomic_write(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(report: dict, path) -> Path:
    """Writes the report as strict JSON (NaN as null), atomically."""
    return _atomic_write(path, json.dumps(_clean(report), indent=2) + "\n")


def csv_rows(report: dict) -> list[dict]:
    """One row per engine and clip, then the engine's aggregate as clip ``ALL``."""
    rows = []
    for engine, section in report["engines"].items():
        items = list(section["clips"].items()) + [("ALL", section["aggregate"])]
        for clip, values in items:
            row = {"engine": engine, "clip": clip}
            row.update({k: values[k] for k in SUMMARY_FIELDS})
            row["terminations"] = ";".join(f"{k}={v}" for k, v in values["terminations"].items())
            rows.append(row)
    return rows


def write_csv(report: dict, path) -> Path:
    """Writes :func:`csv_rows` with a header, atomically."""
    import io

    buffer = io.StringIO()
    fields = ["engine", "clip", *SUMMARY_FIELDS, "terminations"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(_clean(csv_rows(report)))
    return _atomic_write(path, buffer.getvalue())


def _cell(fmt: str, value) -> str:
    width = len(fmt.format(0.0))
    return "-".rjust(width) if value is None or not math.isfinite(value) else fmt.format(value)


def format_table(report: dict) -> str:
    """A fixed-width table per engine: one line per clip and the mean over clips."""
    lines = []
    for engine, section in report["engines"].items():
        names = list(section["clips"])
        width = max([len(n) for n in names] + [6])
        header = " ".join(label.rjust(len(_cell(fmt, 0.0))) for _, label, fmt in COLUMNS)
        lines += [f"[{engine}]", f"{'clip'.ljust(width)} {header}"]
        for name, values in list(section["clips"].items()) + [("ALL", section["aggregate"])]:
            cells = " ".join(_cell(fmt, values[key]) for key, _, fmt in COLUMNS)
            lines.append(f"{name.ljust(width)} {cells}")
        reasons = section["aggregate"]["terminations"]
        if reasons:
            lines.append("terminations: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    return "\n".join(lines)


def _episode_index(episodes: Episodes, motion_id: int) -> int | None:
    hits = np.flatnonzero(episodes.motion_id == motion_id)
    return int(hits[0]) if hits.size else None


PANELS = (("MPJPE (mm)", ("mpjpe_global_mm", "mpjpe_local_mm")), ("joints (rad)", ("joint_pos_error_rad",)),
          ("end effectors and anchor (mm)", ("ee_pos_error_mm", "anchor_pos_error_mm")),
          ("anchor orientation (rad)", ("anchor_ori_error_rad",)))


def plot_clip_errors(engines: dict[str, Episodes], motion_id: int, name: str, out_png, control_dt: float) -> Path:
    """Per-frame errors of the first episode of clip ``motion_id`` for every engine, one figure."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (e.g. a notebook's) alone

    fig = Figure(figsize=(9, 8))
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    styles = {"mjx": "-", "mujoco": "--"}
    for engine, episodes in engines.items():
        n = _episode_index(episodes, motion_id)
        if n is None:
            continue
        length = int(episodes.length[n])
        time = (episodes.start_frame[n] + 1 + np.arange(length)) * control_dt
        for ax, (title, keys) in zip(axes, PANELS):
            for colour, key in zip(("tab:blue", "tab:orange"), keys):
                ax.plot(time, episodes.errors[key][:length, n], styles.get(engine, ":"), color=colour, lw=1,
                        label=f"{key} ({engine})")
            if not episodes.success[n]:
                ax.axvline(time[-1], color="red", lw=0.8, ls=styles.get(engine, ":"))
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=6, loc="upper left")
    axes[-1].set_xlabel("time in clip (s); red line: termination")
    fig.suptitle(f"{name}: per-frame tracking errors", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=72)
    return out_png


def plot_all(engines: dict[str, Episodes], names, out_dir, control_dt: float) -> list[Path]:
    """One PNG per clip in ``out_dir`` (``<clip>.png``)."""
    safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "_" for c in s)  # noqa: E731
    return [plot_clip_errors(engines, i, name, Path(out_dir) / f"{safe(name)}.png", control_dt)
            for i, name in enumerate(names)]

