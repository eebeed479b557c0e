"""The mismatch suite's report: JSON document, CSV, printed tables and the success-by-perturbation plot.

JSON layout::

    {"run": {...}, "evaluation": {...}, "target_success_rate": 0.95, "metrics": {name: definition},
     "perturbations": [{"name", "description", "fields", "delay_steps", "imu_tilt_deg", "pushes"}, ...],
     "engines": {"mjx": {perturbation: {"aggregate": {...}, "clips": {clip: {...}}}}, "mujoco": {...}}}

Clip and aggregate entries are those of ``evaluation/report.py`` (every summary field and terminations).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from mimic_jax.evaluation import report as rep
from mimic_jax.evaluation.metrics import SUMMARY_FIELDS, Episodes

TARGET_SUCCESS = 0.95
# (summary key, header, format); keys an older summary lacks are left out of the table
COLUMNS = (("success_rate", "succ", "{:5.0%}"), ("tracked_rate", "track", "{:5.0%}"),
           ("mpjpe_global_mm", "MPJPE-g", "{:8.1f}"), ("mpjpe_local_mm", "MPJPE-l", "{:8.1f}"),
           ("mean_episode_length_s", "len s", "{:6.2f}"))


def perturbation_entry(p) -> dict:
    return {"name": p.name, "description": p.describe(), "fields": list(p.fields), "delay_steps": p.delay_steps,
            "imu_tilt_deg": list(p.imu_tilt_deg), "pushes": p.pushes}


def build_report(run: dict, evaluation: dict, engines: dict[str, dict[str, Episodes]], perturbations, names,
                 clip_lengths, control_dt: float) -> dict:
    """The JSON document (module doc); ``engines[engine][perturbation]`` are that perturbation's episodes."""
    sections = {engine: {name: rep.engine_section(eps, names, clip_lengths, control_dt) for name, eps in per.items()}
                for engine, per in engines.items()}
    return {"run": run, "evaluation": evaluation, "target_success_rate": TARGET_SUCCESS,
            "metrics": dict(rep.DEFINITIONS), "perturbations": [perturbation_entry(p) for p in perturbations],
            "engines": sections}


def _cell(fmt: str, value) -> str:
    width = len(fmt.format(0.0))
    return "-".rjust(width) if value is None or not math.isfinite(value) else fmt.format(value)


def _columns(report: dict) -> list[tuple[str, str, str]]:
    first = next(iter(next(iter(report["engines"].values())).values()))["aggregate"]
    return [c for c in COLUMNS if c[0] in first]


def format_table(report: dict) -> str:
    """Per engine: one line per perturbation (mean over clips, the clips below target), then each clip's
    success under every perturbation."""
    lines = []
    columns = _columns(report)
    target = report["target_success_rate"]
    for engine, per in report["engines"].items():
        width = max([len(n) for n in per] + [12])
        header = " ".join(label.rjust(len(_cell(fmt, 0.0))) for _, label, fmt in columns)
        lines += [f"[{engine}] mean over clips",
                  f"{'perturbation'.ljust(width)} {header}  clips < {target:.0%} success"]
        for name, section in per.items():
            cells = " ".join(_cell(fmt, section["aggregate"][key]) for key, _, fmt in columns)
            below = [c for c, v in section["clips"].items() if not v["success_rate"] >= target]
            lines.append(f"{name.ljust(width)} {cells}  {', '.join(below) if below else '-'}")
        lines += ["", f"[{engine}] success per clip", _clip_matrix(per, width)]
    return "\n".join(lines)


def _clip_matrix(per: dict, width: int) -> str:
    clips = list(next(iter(per.values()))["clips"])
    cw = [max(len(c), 5) for c in clips]
    rows = [" ".join(["perturbation".ljust(width)] + [c.rjust(w) for c, w in zip(clips, cw)])]
    for name, section in per.items():
        cells = [_cell("{:5.0%}", section["clips"][c]["success_rate"]).rjust(w) for c, w in zip(clips, cw)]
        rows.append(" ".join([name.ljust(width)] + cells))
    return "\n".join(rows)


def csv_rows(report: dict) -> list[dict]:
    """One row per engine, perturbation and clip, then the perturbation's mean over clips as clip ``ALL``."""
    rows = []
    for engine, per in report["engines"].items():
        for name, section in per.items():
            for clip, values in list(section["clips"].items()) + [("ALL", section["aggregate"])]:
                row = {"engine": engine, "perturbation": name, "clip": clip}
                row.update({k: values.get(k) for k in SUMMARY_FIELDS})
                row["terminations"] = ";".join(f"{k}={v}" for k, v in values["terminations"].items())
                rows.append(row)
    return rows


def write_csv(report: dict, path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["engine", "perturbation", "clip", *SUMMARY_FIELDS, "terminations"])
    writer.writeheader()
    writer.writerows(rep._clean(csv_rows(report)))
    return rep._atomic_write(path, buffer.getvalue())


def plot_success(report: dict, out_png) -> Path:
    """Success rate (mean over clips) by perturbation, one bar per engine, the target as a line."""
    from matplotlib.figure import Figure

    engines = list(report["engines"])
    names = list(report["engines"][engines[0]])
    fig = Figure(figsize=(8, 0.3 * len(names) + 1.5))
    ax = fig.subplots()
    y, height = np.arange(len(names)), 0.8 / len(engines)
    for k, (engine, colour) in enumerate(zip(engines, ("tab:blue", "tab:orange"))):
        rates = [report["engines"][engine][n]["aggregate"]["success_rate"] for n in names]
        ax.barh(y + (k - (len(engines) - 1) / 2) * height, [100 * (r or 0.0) for r in rates], height,
                color=colour, label="MJX" if engine == "mjx" else "MuJoCo C")
    ax.axvline(100 * report["target_success_rate"], color="red", lw=0.8, ls="--", label="target")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("success (% of episodes, mean over clips)")
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("success by perturbation", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.parent / f".{out_png.name}.tmp.png"
    fig.savefig(tmp, dpi=80)
    tmp.replace(out_png)
    return out_png
