"""Turns the ``params.npz`` written by ``time_to_policy.py`` (e.g. on a GPU machine, from which a full Orbax
run directory is too large to bring back) into a run directory that ``python -m mimic_jax.eval`` reads.

    python experiments/import_policy.py runs/ttp_walk --motion-set motions/clips/walk_forward.npz --out runs/walk
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from mimic_jax.checkpoint import config_from_dict, run_meta, save_run
from mimic_jax.motion.library import build_library
from mimic_jax.motion.sets import load_motion_set, resolve_motion_set
from mimic_jax.ppo.trainer import Trainer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="folder with params.npz, config.json and summary.json")
    p.add_argument("--motion-set", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    src = Path(args.source)
    cfg = config_from_dict(json.loads((src / "config.json").read_text()))
    summary = json.loads((src / "summary.json").read_text())
    entries = load_motion_set(resolve_motion_set(args.motion_set))
    lib = build_library([c for _, c, _ in entries], [n for n, _, _ in entries])
    local = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, impl="jax"),
                                ppo=dataclasses.replace(cfg.ppo, num_envs=2), num_devices=1)
    trainer = Trainer(local, lib)
    carry = trainer.init()
    ts = carry.train_state
    with np.load(src / "params.npz") as data:
        leaves = [data[f"leaf_{i:04d}"] for i in range(len(data.files))]
    treedef = jax.tree.structure({"params": ts.params, "normalizer": ts.normalizer})
    loaded = jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in leaves])
    carry = carry.replace(train_state=ts.replace(params=loaded["params"], normalizer=loaded["normalizer"]))
    final = summary.get("final") or {}
    meta = run_meta(lib, args.motion_set, final.get("iterations", 0), final.get("env_steps", 0),
                    imported_from=str(src), trained_on=summary.get("device"))
    print(save_run(args.out, carry, cfg, meta))


if __name__ == "__main__":
    main()
