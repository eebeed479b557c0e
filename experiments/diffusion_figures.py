"""Figures of the diffusion docs.

    python experiments/diffusion_figures.py mask [--history 2] [--horizon 3]     # docs/img/diffusion_mask.png
    python experiments/diffusion_figures.py curves RUN_A RUN_B [...] --out docs/img/diffusion_bf16.png

``mask`` is drawn from ``mimic_jax.diffusion.model.attention_mask`` itself (small N and H so that labels stay
readable; the default model has N = 4, H = 16: 42 tokens with the same pattern). ``curves`` overlays the
training and validation losses of runs (``metrics.jsonl``), e.g. float32 against bfloat16.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from mimic_jax.diffusion.logs import read_records  # noqa: E402
from mimic_jax.diffusion.model import attention_mask, token_is_state, token_time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _label(time: int, state: bool, history: int) -> str:
    offset = time - history
    step = "t" if offset == 0 else f"t{offset:+d}"
    return f"${'s' if state else 'a'}_{{{step}}}$"


def plot_mask(history: int, horizon: int, out: Path) -> Path:
    steps = history + horizon + 1
    mask, state, time = attention_mask(steps), token_is_state(steps), token_time(steps)
    # 0 masked; 1 state -> state; 2 action -> state; 3 action -> action
    kind = np.where(mask, np.where(state[None, :], np.where(state[:, None], 1, 2), 3), 0)
    fig, ax = plt.subplots(figsize=(7.2, 6.4))
    ax.imshow(kind, cmap=ListedColormap(["#f4f4f4", "#4c78a8", "#9ecae9", "#f58518"]), vmin=0, vmax=3)
    labels = [_label(int(t), bool(s), history) for t, s in zip(time, state)]
    ax.set_xticks(range(2 * steps), labels, fontsize=8, rotation=90)
    ax.set_yticks(range(2 * steps), labels, fontsize=8)
    edge = 2 * history + 0.5  # after the 2N + 1 given tokens s_{t-N} .. s_t, a_{t-N} .. a_{t-1}
    ax.axvline(edge, color="k", lw=1.2, ls="--")
    ax.axhline(edge, color="k", lw=1.2, ls="--")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(f"attention mask, N = {history}, H = {horizon} (history: above / left of the dashed lines)",
                 fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("#4c78a8", "#9ecae9", "#f58518", "#f4f4f4")]
    ax.legend(handles, ["state -> state (all times)", "action -> state (times <= own)",
                        "action -> action (times <= own)", "masked"], loc="upper center",
              bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def plot_curves(runs: list[Path], out: Path) -> Path:
    """Training (solid) and validation (dashed) loss against steps and wall time, one colour per run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for i, run in enumerate(runs):
        records = read_records(run / "metrics.jsonl")
        for ax, x in zip(axes, ("step", "wall_s")):
            for key, style in (("loss", "-"), ("val/loss", "--")):
                rows = [r for r in records if key in r]
                ax.plot([r[x] for r in rows], [r[key] for r in rows], style, color=f"C{i}",
                        label=f"{run.name} {'train' if key == 'loss' else 'validation'}")
    for ax, label in zip(axes, ("optimizer step", "wall time (s)")):
        ax.set(xlabel=label, yscale="log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("x0 MSE (normalized)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="figure", required=True)
    mask = sub.add_parser("mask")
    mask.add_argument("--history", type=int, default=2)
    mask.add_argument("--horizon", type=int, default=3)
    mask.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "diffusion_mask.png")
    curves = sub.add_parser("curves")
    curves.add_argument("runs", type=Path, nargs="+")
    curves.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.figure == "mask":
        print(plot_mask(args.history, args.horizon, args.out))
    else:
        print(plot_curves(args.runs, args.out))


if __name__ == "__main__":
    main()
