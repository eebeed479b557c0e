"""``python -m mimic_jax.diffusion train|synthetic|info``: the phase-2 diffusion model's commands.

    python -m mimic_jax.diffusion train --data DATA [...]     # = python -m mimic_jax.diffusion.train
    python -m mimic_jax.diffusion synthetic --out DATA        # = python -m mimic_jax.diffusion.synthetic
    python -m mimic_jax.diffusion info RUN                    # a trained model's card: config, layout, data
"""

from __future__ import annotations

import json
import sys

USAGE = "usage: python -m mimic_jax.diffusion train|synthetic|info ... (see --help of each)"


def info(argv) -> int:
    from mimic_jax.diffusion.checkpoint import RunError, read_meta

    if len(argv) != 1 or argv[0].startswith("-"):
        print("error: info takes one run directory or checkpoint (python -m mimic_jax.diffusion info RUN)",
              file=sys.stderr)
        return 2
    try:
        meta = read_meta(argv[0])
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = ("checkpoint", "step", "params", "layout", "dataset", "preset", "wall_s", "saved_at", "config")
    print(json.dumps({k: meta.get(k) for k in keys}, indent=1))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("train", "synthetic", "info"):
        print(f"error: {USAGE}", file=sys.stderr)
        return 2
    if argv[0] == "train":
        from mimic_jax.diffusion.train import main as train

        return train(argv[1:])
    if argv[0] == "synthetic":
        from mimic_jax.diffusion.synthetic import main as synthetic

        return synthetic(argv[1:])
    return info(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
