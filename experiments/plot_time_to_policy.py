"""Success rate and tracking error against wall-clock for the time-to-policy runs in experiments/results.

    python experiments/plot_time_to_policy.py --out docs/img/time_to_policy.png
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = {"ttp_walk": "walk_forward, 4096 envs (H200)",
        "ttp_walk16k": "walk_forward, 16384 envs (H200)",
        "2026-11-26_h200x2/ttp_loco16k": "locomotion_basic (7 clips), 16384 envs (H200)",
        "2026-11-26_h200x2/ttp_dyn16k": "dynamic_skills (6 clips), 16384 envs (H200)"}


def load(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "curve.jsonl").read_text().splitlines() if line.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", default="experiments/results")
    p.add_argument("--out", default="docs/img/time_to_policy.png")
    args = p.parse_args(argv)
    fig, (ax_s, ax_t, ax_e) = plt.subplots(1, 3, figsize=(14, 3.8))
    for name, label in RUNS.items():
        rows = load(Path(args.results) / name)
        wall = [r["wall_s"] for r in rows]
        line, = ax_s.plot(wall, [100 * min(r["clean_success"]) for r in rows], "o-", label=label)
        if "clean_tracked" in rows[0]:  # runs from before the tracked criterion existed do not have it
            ax_t.plot(wall, [100 * min(r["clean_tracked"]) for r in rows], "o-", color=line.get_color(), label=label)
        ax_e.plot(wall, [max(r["clean_mpjpe_mm"]) for r in rows], "o-", color=line.get_color(), label=label)
    ax_s.set(xlabel="wall-clock incl. compilation (s)", ylabel="success, worst clip (%)", ylim=(-5, 105),
             title="published criterion: no termination")
    ax_t.set(xlabel="wall-clock incl. compilation (s)", ylabel="tracked, worst clip (%)", ylim=(-5, 105),
             title="and anchor within 0.5 m horizontally")
    ax_e.set(xlabel="wall-clock incl. compilation (s)", ylabel="global MPJPE, worst clip (mm)", yscale="log",
             title="tracking error")
    for ax in (ax_s, ax_t, ax_e):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(9)
    handles, labels = ax_s.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("MJX-Warp on one NVIDIA H200, 2026-11-25 and 26: deterministic policy from frame 0, clean", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
