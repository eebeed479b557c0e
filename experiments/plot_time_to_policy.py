"""Success rate and tracking error against wall-clock for the time-to-policy runs in experiments/results.

    python experiments/plot_time_to_policy.py --out docs/img/time_to_policy.png
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = {"ttp_walk": "walk_forward, 4096 envs", "ttp_walk16k": "walk_forward, 16384 envs"}


def load(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "curve.jsonl").read_text().splitlines() if line.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="experiments/results")
    p.add_argument("--out", default="docs/img/time_to_policy.png")
    args = p.parse_args(argv)
    fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, label in RUNS.items():
        rows = load(Path(args.results) / name)
        wall = [r["wall_s"] for r in rows]
        ax_s.plot(wall, [100 * min(r["clean_success"]) for r in rows], "o-", label=label)
        ax_e.plot(wall, [max(r["clean_mpjpe_mm"]) for r in rows], "o-", label=label)
    ax_s.set(xlabel="wall-clock incl. compilation (s)", ylabel="clean success (%)", ylim=(-5, 105))
    ax_e.set(xlabel="wall-clock incl. compilation (s)", ylabel="global MPJPE (mm)", yscale="log")
    for ax in (ax_s, ax_e):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("NVIDIA H200, MJX-Warp, 2026-11-25: deterministic policy from frame 0", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
