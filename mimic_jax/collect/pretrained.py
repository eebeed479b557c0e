"""Trackers shipped with the package, by name (``--pretrained NAME``).

A pretrained tracker is a run directory in ``mimic_jax/pretrained/NAME/`` holding what ``checkpoint.load_run``
reads: ``checkpoints/<iteration>/policy`` (parameters and observation normalizer, a few MB) and ``meta`` (the
resolved config, the motion set and its fingerprint). The training state (``carry``) is not shipped. A trained
run becomes one with::

    python -m mimic_jax.collect.pretrained runs/generalist-YYYYmmdd-HHMMSS --name generalist
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"


class PretrainedError(ValueError):
    """An unknown name or weights not in this checkout; one line."""


@dataclasses.dataclass(frozen=True)
class Pretrained:
    name: str
    motion_set: str  # the set it was trained on (motions/sets/<motion_set>.yaml)
    description: str
    how: str  # how its weights are made

    @property
    def path(self) -> Path:
        return PRETRAINED_DIR / self.name


REGISTRY = {p.name: p for p in (
    Pretrained(name="generalist", motion_set="generalist",
               description="one tracker over every built-in clip (13 clips), trained on one GPU with the published "
                           "settings; the default teacher of `python -m mimic_jax.collect`",
               how="python -m mimic_jax.train --motion-set generalist on one GPU, then its last checkpoint's "
                   "policy and meta copied here"),
)}
DEFAULT = "generalist"


def resolve(name: str) -> Path:
    """The run directory of a pretrained tracker; refuses an unknown name or missing weights."""
    if name not in REGISTRY:
        raise PretrainedError(f"--pretrained {name}: unknown (known: {', '.join(sorted(REGISTRY))})")
    entry = REGISTRY[name]
    checkpoints = entry.path / "checkpoints"
    if not checkpoints.is_dir() or not any(p.name.isdigit() for p in checkpoints.iterdir()):
        raise PretrainedError(f"--pretrained {name}: its weights are not in this checkout (expected a run "
                              f"directory at {entry.path}; made by: {entry.how}); pass --run RUN instead")
    return entry.path


SHIPPED = ("policy", "meta", "_CHECKPOINT_METADATA")


def export(run, name: str, *, dest: Path | None = None, replace: bool = False) -> Path:
    """Copies the latest checkpoint's policy and meta (not the training state) of ``run`` into the registry
    folder of ``name`` (or ``dest``), atomically; checks that the copy loads. Returns the run directory."""
    from mimic_jax.checkpoint import load_run, locate

    if dest is None and name not in REGISTRY:
        raise PretrainedError(f"--name {name}: not in the registry (known: {', '.join(sorted(REGISTRY))})")
    folder, step = locate(run)
    target = Path(dest) if dest is not None else PRETRAINED_DIR / name
    if target.exists() and not replace:
        raise PretrainedError(f"{target} already exists; pass --replace to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        step_dir = tmp / "checkpoints" / str(step)
        step_dir.mkdir(parents=True)
        for item in SHIPPED:
            source = folder / str(step) / item
            if source.is_dir():
                shutil.copytree(source, step_dir / item)
            elif source.is_file():
                shutil.copy2(source, step_dir / item)
        load_run(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mimic_jax.collect.pretrained",
                                description="ship a trained run's policy as a pretrained tracker")
    p.add_argument("run", type=Path, help="training run directory (its latest checkpoint)")
    p.add_argument("--name", required=True, help=f"registry name (known: {', '.join(sorted(REGISTRY))})")
    p.add_argument("--replace", action="store_true")
    args = p.parse_args(argv)
    try:
        print(f"wrote {export(args.run, args.name, replace=args.replace)}")
    except ValueError as exc:  # PretrainedError, CheckpointError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
