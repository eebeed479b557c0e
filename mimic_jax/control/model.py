"""The trained diffusion model a control run uses: its description (card), and the refusal of a model the task
cannot use.

The description gives ``layout``, the state representation the model was trained on: either its name, or
``{"name", "size", "parts"}`` as ``mimic_jax.diffusion`` checkpoints store it; name, size and parts must be this
package's layout of that name (``states.LAYOUTS``), else the model reads and predicts other states. The
description is ``card.json`` in the model directory where there is one, else the meta of the latest checkpoint
of a ``mimic_jax.diffusion`` run (a run directory, its ``checkpoints`` folder or one checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path

from mimic_jax import states as st

CARD = "card.json"


class ModelError(ValueError):
    """A model that cannot be used here; one line."""


def layout_of(card: dict, where: str = "model") -> str:
    """The name of the state layout ``card`` describes, checked against this package's layouts."""
    if not isinstance(card, dict) or "layout" not in card:
        raise ModelError(f"{where}: no 'layout' (the state representation the model was trained on)")
    layout = card["layout"]
    name = layout.get("name") if isinstance(layout, dict) else layout
    if name not in st.LAYOUTS:
        raise ModelError(f"{where}: the model was trained on an unknown state layout {name!r} "
                         f"(known: {', '.join(st.LAYOUTS)})")
    here = st.LAYOUTS[name]
    size = layout.get("size") if isinstance(layout, dict) else card.get("state_size")
    parts = layout.get("parts") if isinstance(layout, dict) else None
    if size is not None and size != here.size:
        raise ModelError(f"{where}: state size {size} is not the size of layout {name!r} ({here.size}); the model "
                         "was trained on another state layout")
    if parts is not None and [tuple(p) for p in parts] != list(here.parts):
        raise ModelError(f"{where}: layout {name!r} has parts {parts}, this mimic_jax has "
                         f"{[list(p) for p in here.parts]}; the model was trained on another state layout")
    return name


def load_card(model_dir) -> dict:
    """The card of a model directory (``card.json``), its layout checked."""
    model_dir = Path(model_dir)
    path = model_dir / CARD
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such model directory")
    if not path.exists() and _is_run(model_dir):
        return _run_card(model_dir)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: no {CARD}; is this a model written by mimic_jax.diffusion?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a JSON model card ({exc})") from None
    layout_of(card, str(path))
    return card


def _is_run(path: Path) -> bool:
    return (path / "checkpoints").is_dir() or path.name == "checkpoints" or path.parent.name == "checkpoints"


def _run_card(path: Path) -> dict:
    """The meta of a diffusion run's latest checkpoint, its layout checked (one line if unusable)."""
    from mimic_jax.diffusion.checkpoint import RunError, read_meta

    try:
        meta = read_meta(path)
    except RunError as exc:
        raise ModelError(str(exc)) from None
    layout_of(meta, meta["checkpoint"])
    return meta


def check_layout(card: dict, expected: str | None, where: str = "model") -> str:
    """The model's layout name; refuses one other than ``expected`` (when given)."""
    name = layout_of(card, where)
    if expected is not None and name != expected:
        raise ModelError(f"{where} was trained on the {name} state layout, not {expected}: it reads and "
                         "predicts other states")
    return name
