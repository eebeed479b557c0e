"""Contacts and constraint rows per environment, to size MJX-Warp's buffers (``contacts_per_env``,
``constraints_per_env``), measured on MuJoCo C with the same model and collision setting.

    python experiments/contact_budget.py --motion-set locomotion_basic --episodes 4 --seconds 4 --json out.json

Each episode starts at a random frame of a clip, the robot on the reference, and holds the reference joint
angles as PD targets plus Gaussian action noise (``--noise``, in action units), so the robots stumble, cross
their legs, hit their arms and fall: the contact counts of a badly tracking policy early in training.
MuJoCo C and MJX-Warp generate contacts the same way (only where geoms are within their margin, up to two
per capsule pair); MJX-Warp's contact pool is shared by the whole batch, its constraint rows are per world.
"""

from __future__ import annotations

import argparse
import json
import time

import mujoco
import numpy as np
from tqdm import tqdm

from mimic_jax.assets import g1
from mimic_jax.motion.sets import load_motion_set, resolve_motion_set


def episode(model, data, clip, start: int, steps: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Per control step, the most contacts and constraint rows over its 4 physics steps."""
    table = g1.joint_table()
    mujoco.mj_resetData(model, data)
    data.qpos[:] = g1.qpos_from(clip.root_pos[start], clip.root_quat[start], clip.joint_pos[start])
    ncon, nefc = np.zeros(steps, int), np.zeros(steps, int)
    for t in range(steps):
        frame = min(start + t, clip.num_frames - 1)
        action = (clip.joint_pos[frame] - table.default_pos) / table.action_scale + noise * rng.normal(size=29)
        data.ctrl[:] = table.default_pos + table.action_scale * action
        for _ in range(4):
            mujoco.mj_step(model, data)
            ncon[t], nefc[t] = max(ncon[t], data.ncon), max(nefc[t], data.nefc)
    return ncon, nefc


def measure(collisions: str, clips, episodes: int, seconds: float, noise: float, seed: int) -> dict:
    model = g1.load_model(collisions=collisions)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    steps = int(round(seconds * 50))
    ncon, nefc = [], []
    for _ in tqdm(range(episodes * len(clips)), desc=collisions, unit="episode", leave=False):
        clip = clips[rng.integers(len(clips))]
        c, e = episode(model, data, clip, int(rng.integers(clip.num_frames)), steps, noise, rng)
        ncon.append(c)
        nefc.append(e)
    ncon, nefc = np.concatenate(ncon), np.concatenate(nefc)
    pct = lambda x: {f"p{q}": float(np.percentile(x, q)) for q in (50, 90, 99)} | {"max": int(x.max())}  # noqa: E731
    return {"collisions": collisions, "contacts": pct(ncon), "constraint_rows": pct(nefc),
            "mean_contacts": float(ncon.mean()), "control_steps": int(ncon.size)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motion-set", default="locomotion_basic")
    p.add_argument("--collisions", nargs="+", default=list(g1.COLLISION_MODES), choices=g1.COLLISION_MODES)
    p.add_argument("--episodes", type=int, default=4, help="episodes per clip")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--noise", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    clips = [clip for _, clip, _ in load_motion_set(resolve_motion_set(args.motion_set))]
    rows = []
    for mode in args.collisions:
        row = measure(mode, clips, args.episodes, args.seconds, args.noise, args.seed)
        row.update(motion_set=args.motion_set, noise=args.noise, date=time.strftime("%Y-%m-%d"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
