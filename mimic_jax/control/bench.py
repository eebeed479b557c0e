"""The control benchmark: each task's protocol over seeded episodes, for an unguided baseline and a sweep of the
guidance weight, each figure with a 95% interval; reported as a table, JSON and plots.

The episodes themselves are played by a *simulator*: ``simulate(batch: TaskBatch, weight: float) -> Recorded``
(the guided diffusion controller on the shared episode runner, in MJX or MuJoCo C). Everything else here is
pure: protocols -> batches, recorded world states -> figures -> report.

Figures per task (definitions in ``control.metrics``): perturb: success (no fall); joystick: success (no fall,
every segment's error <= ``success_error_pct``), velocity error (% of command, per-episode mean over segments),
falls; waypoint: success (reached, no fall), time to reach, falls; obstacles: success (reached, no collision, no
fall), collisions, falls, time; inpaint: falls, MJPE and MRPE at the keyframes (m).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from mimic_jax import states as st
from mimic_jax.control import guidance as G
from mimic_jax.control import metrics as M
from mimic_jax.control import protocols as proto

# Published anchors and our targets (issue 16), shown beside our figures.
ANCHORS = {
    "perturb": {"success": ("BeyondMimic 100%", ">= 98%")},
    "joystick/fixed": {"success": ("BeyondMimic 80%", ">= 90%"),
                       "velocity_error_pct": ("BeyondMimic v4 12-14%", "<= 12%")},
    "joystick/random": {"velocity_error_pct": ("-", "<= 12%")},
    "waypoint": {"success": ("-", ">= 95%")},
    "obstacles": {"success": ("Diffuse-CLoC 96%", ">= 96%"), "time_s": ("Diffuse-CLoC 13.2 s", "-"),
                  "collision": ("-", "0%")},
    "inpaint": {"falls": ("Diffuse-CLoC 31%", "<= 15%"), "mjpe_m": ("Diffuse-CLoC 0.116 m", "-"),
                "mrpe_m": ("Diffuse-CLoC 0.322 m", "-")},
}
VARIANTS = {"perturb": ("perturb",), "joystick": ("joystick/fixed", "joystick/random"), "waypoint": ("waypoint",),
            "obstacles": ("obstacles",), "inpaint": ("inpaint",)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchConfig:
    episodes: int = 50
    seed: int = 0
    weight_multiples: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # x the task's default weight; 0 is always run
    success_error_pct: float = 25.0  # joystick: a segment succeeds within this error (ours)
    max_seconds: float | None = None  # cut every episode here (a quick check: the figures are not the protocol's)
    guidance: G.GuidanceConfig = G.GuidanceConfig()
    perturb: proto.PerturbProtocol = proto.PerturbProtocol()
    joystick: proto.JoystickProtocol = proto.JoystickProtocol()
    waypoint: proto.WaypointProtocol = proto.WaypointProtocol()
    obstacles: proto.ObstacleProtocol = proto.ObstacleProtocol()
    inpaint: proto.InpaintProtocol = proto.InpaintProtocol()


class TaskBatch(NamedTuple):
    """One task variant's episodes, ready to simulate."""

    name: str  # e.g. "joystick/random"
    task: str
    protocol: object
    episodes: object  # the protocol's episodes (start frame)
    start: st.Frame  # [N] where each robot starts, world
    plan: G.TaskPlan  # world
    steps: int


class Recorded(NamedTuple):
    """What a simulator returns: world states at steps 0..T and which steps were simulated."""

    world: st.WorldStates  # [T+1, N, ...]
    valid: np.ndarray  # [T+1, N]
    kicks: np.ndarray | None = None  # [T, N, 3] applied kicks (perturb), for videos


Simulator = Callable[[TaskBatch, float], Recorded]


def make_batch(name: str, cfg: BenchConfig, start: st.Frame, lib=None) -> TaskBatch:
    """The episodes of variant ``name`` for robots starting at ``start`` [N] (``lib``: clips, for inpainting)."""
    task = proto.check_task(name.split("/")[0])
    n, seed = int(np.shape(start.origin)[0]), cfg.seed
    if task == "perturb":
        protocol, eps = cfg.perturb, proto.perturb(cfg.perturb, n, seed)
    elif task == "joystick":
        protocol = dataclasses.replace(cfg.joystick, sequence=name.split("/")[1])
        eps = proto.joystick(protocol, n, seed)
    elif task == "waypoint":
        protocol, eps = cfg.waypoint, proto.waypoint(cfg.waypoint, n, seed)
    elif task == "obstacles":
        protocol, eps = cfg.obstacles, proto.obstacles(cfg.obstacles, n, seed)
    else:
        if lib is None:
            raise proto.ProtocolError("inpainting needs a motion set to take its clips from")
        protocol, eps = cfg.inpaint, proto.inpaint(cfg.inpaint, n, seed, lib)
    steps = int(eps.steps) if cfg.max_seconds is None else min(int(eps.steps), proto.steps_of(cfg.max_seconds))
    return TaskBatch(name=name, task=task, protocol=protocol, episodes=eps, start=start,
                     plan=G.plan(task, eps, start, cfg.guidance), steps=max(1, steps))


# -- figures ------------------------------------------------------------------------------------------------------
def _goal_and_obstacles(batch: TaskBatch):
    goal = np.asarray(batch.plan.costs.terms["waypoint"].params.position)
    obs = batch.plan.costs.terms.get("obstacles")
    return goal, (None if obs is None else obs.params.obstacles)


def figures(batch: TaskBatch, rec: Recorded, cfg: BenchConfig) -> dict[str, M.Figure]:
    """Every figure of one simulated batch (module doc)."""
    fell, _ = M.falls(rec.world, rec.valid)
    out = {"falls": M.rate(fell)}
    if batch.task == "perturb":
        return {"success": M.rate(~fell), **out}
    if batch.task == "joystick":
        err = M.joystick_errors(rec.world, rec.valid, batch.episodes.segments, batch.episodes.segment_commands)
        ok = ~fell & np.all(np.where(np.isnan(err), True, err <= cfg.success_error_pct), axis=1)
        return {"success": M.rate(ok), "velocity_error_pct": M.mean(_row_mean(err), "%"), **out}
    if batch.task in ("waypoint", "obstacles"):
        goal, obs = _goal_and_obstacles(batch)
        hit, time = M.reached(rec.world, rec.valid, goal)
        if obs is None:
            return {"success": M.rate(hit & ~fell), "time_s": M.mean(time[hit & ~fell], "s"), **out}
        hits = M.collided(rec.world, rec.valid, obs)
        ok = hit & ~fell & ~hits
        return {"success": M.rate(ok), "collision": M.rate(hits), "time_s": M.mean(time[ok], "s"), **out}
    mjpe, mrpe = M.keyframe_errors(rec.world, rec.valid, batch.episodes.keyframes)
    return {**out, "mjpe_m": M.mean(_row_mean(mjpe), "m"), "mrpe_m": M.mean(_row_mean(mrpe), "m")}


def _row_mean(a: np.ndarray) -> np.ndarray:
    """[N] mean of each row's finite entries (NaN for a row with none)."""
    ok = np.isfinite(a)
    count = ok.sum(axis=1)
    return np.where(count > 0, np.where(ok, a, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)


def weights(task: str, cfg: BenchConfig) -> list[float]:
    """Guidance weights to run: 0 (the unguided baseline) and the multiples of the task's default."""
    default = cfg.guidance.weight(task)
    return [0.0] + ([] if default == 0 else [m * default for m in cfg.weight_multiples])


def run(names, simulate: Simulator, cfg: BenchConfig, start: st.Frame, lib=None, progress=None) -> dict:
    """{variant: {"protocol", "anchors", "rows": [{"weight", "figures"}]}} for every variant in ``names``."""
    out = {}
    for name in names:
        batch = make_batch(name, cfg, start, lib)
        rows = []
        for w in weights(batch.task, cfg):
            rec = simulate(batch, w)
            rows.append({"weight": w, "figures": {k: f.to_dict() for k, f in figures(batch, rec, cfg).items()}})
            if progress is not None:
                progress(name, w)
        out[name] = {"protocol": _jsonable(dataclasses.asdict(batch.protocol)), "steps": batch.steps,
                     "anchors": {k: {"published": a, "target": t} for k, (a, t) in ANCHORS[name].items()},
                     "rows": rows}
    return out


# -- report -------------------------------------------------------------------------------------------------------
def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(report: dict, path) -> Path:
    """Strict JSON (NaN -> null), written to a temporary name and renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_text(json.dumps(_jsonable(report), indent=1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _cell(fig: dict) -> str:
    v, lo, hi, unit = fig["value"], fig["low"], fig["high"], fig["unit"]
    if v is None or not math.isfinite(v):
        return "-"
    if unit == "fraction":
        span = "" if lo is None or not math.isfinite(lo) else f" [{lo:.0%}, {hi:.0%}]"
        return f"{v:.0%}{span}"
    span = "" if lo is None or not math.isfinite(lo) else f" [{lo:.3g}, {hi:.3g}]"
    return f"{v:.3g} {unit}{span}"


def format_table(tasks: dict) -> str:
    """One block per task variant: a row per guidance weight, a column per figure (95% intervals), anchors."""
    lines = []
    for name, entry in tasks.items():
        names = list(entry["rows"][0]["figures"]) if entry["rows"] else []
        lines.append(f"{name}  (n = {entry['rows'][0]['figures'][names[0]]['n'] if names else 0} episodes)")
        lines.append("  " + "weight".ljust(8) + "".join(n.ljust(26) for n in names))
        for row in entry["rows"]:
            label = f"{row['weight']:g}" + (" (unguided)" if row["weight"] == 0 else "")
            lines.append("  " + label.ljust(8) + "".join(_cell(row["figures"][n]).ljust(26) for n in names))
        for fig, a in entry["anchors"].items():
            lines.append(f"  anchor {fig}: published {a['published']}, target {a['target']}")
    return "\n".join(lines)


def plot(tasks: dict, out_dir) -> list[Path]:
    """One PNG per task variant: each figure against the guidance weight, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, entry in tasks.items():
        names = list(entry["rows"][0]["figures"])
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
        w = np.array([r["weight"] for r in entry["rows"]])
        for ax, key in zip(axes[0], names):
            f = [r["figures"][key] for r in entry["rows"]]
            v = np.array([np.nan if x["value"] is None else x["value"] for x in f], float)
            lo = np.array([np.nan if x["low"] is None else x["low"] for x in f], float)
            hi = np.array([np.nan if x["high"] is None else x["high"] for x in f], float)
            ax.errorbar(w, v, yerr=np.nan_to_num(np.stack([v - lo, hi - v])), fmt="o-", capsize=3)
            ax.set(title=key, xlabel="guidance weight", ylabel=f[0]["unit"])
        fig.suptitle(name)
        fig.tight_layout()
        path = out_dir / f"{name.replace('/', '_')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
