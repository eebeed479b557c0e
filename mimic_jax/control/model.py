"""The trained diffusion model a control run uses: its card, and the refusal of a model the task cannot use.

A model directory holds ``card.json`` (written by ``mimic_jax.diffusion``) with at least ``layout``, the state
representation it was trained on (``states.LAYOUTS``); where the card also gives the state size
(``state_size``), it must be that layout's size.
"""

from __future__ import annotations

import json
from pathlib import Path

from mimic_jax import states as st

CARD = "card.json"


class ModelError(ValueError):
    """A model directory that cannot be used here; one line."""


def load_card(model_dir) -> dict:
    """The card of a model directory, its layout checked against the known state layouts."""
    model_dir = Path(model_dir)
    path = model_dir / CARD
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such model directory")
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: no {CARD}; is this a model written by mimic_jax.diffusion?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a JSON model card ({exc})") from None
    if not isinstance(card, dict) or "layout" not in card:
        raise ModelError(f"{path}: the card has no 'layout' (the state representation the model was trained on)")
    if card["layout"] not in st.LAYOUTS:
        raise ModelError(f"{path}: the model was trained on an unknown state layout {card['layout']!r} "
                         f"(known: {', '.join(st.LAYOUTS)})")
    size = card.get("state_size")
    if size is not None and size != st.LAYOUTS[card["layout"]].size:
        raise ModelError(f"{path}: state_size {size} is not the size of layout {card['layout']!r} "
                         f"({st.LAYOUTS[card['layout']].size}); the model was trained on another state layout")
    return card


def check_layout(card: dict, expected: str | None, where: str = "model") -> str:
    """The model's layout; refuses one other than ``expected`` (when given)."""
    if expected is not None and card["layout"] != expected:
        raise ModelError(f"{where} was trained on the {card['layout']} state layout, not {expected}: it reads and "
                         f"predicts other states")
    return card["layout"]
