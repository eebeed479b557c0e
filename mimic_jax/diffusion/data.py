"""Demonstration datasets (the contract in ``docs/phase2.md``): loading with checks, and training windows
drawn on the device.

``load_dataset(path)`` reads the fields the model needs (the state representation, the clean teacher action
``label`` and the ``episode`` ids) as memory maps and validates them against the card and this package's
state layout; every problem is one line naming the file. :func:`draw_batch` draws training samples inside a
jitted program from the device-resident arrays: a random window, a random current step c with N steps of
history and H of future inside the window, the segment c-N .. c+H re-anchored at c
(``states.reanchor``: the controller replans from the character frame of its current step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import states as st
from mimic_jax.assets import g1

CARD = "card.json"


class DatasetError(ValueError):
    """A dataset that cannot be used; one line naming the path and the problem."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The fields a diffusion model trains on (memory-mapped) and the dataset's card."""

    path: Path
    card: dict
    representation: str
    states: np.ndarray  # [W, T, D] global dims in the frame of each window's first step
    labels: np.ndarray  # [W, T, 29] clean teacher actions
    episode: np.ndarray  # [W]
    fingerprint: str

    @property
    def windows(self) -> int:
        return int(self.states.shape[0])

    @property
    def steps(self) -> int:
        return int(self.states.shape[1])


def _read_card(path: Path) -> dict:
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset directory")
    card_path = path / CARD
    if not card_path.is_file():
        raise DatasetError(f"{path}: no {CARD} (not a dataset directory written by python -m mimic_jax.collect)")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{card_path}: unreadable JSON ({type(exc).__name__})") from None
    if not isinstance(card, dict):
        raise DatasetError(f"{card_path}: expected a JSON object")
    return card


def _field(path: Path, card: dict, name: str) -> np.ndarray:
    """One ``.npy`` field, memory-mapped, checked against the card's shape and dtype where it gives them."""
    file = path / f"{name}.npy"
    if not file.is_file():
        have = sorted(p.stem for p in path.glob("*.npy"))
        raise DatasetError(f"{path}: no {name}.npy (fields here: {', '.join(have) or 'none'})")
    try:
        array = np.load(file, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{file}: unreadable .npy ({type(exc).__name__})") from None
    spec = card.get("fields", {}).get(name, {})
    if "shape" in spec and list(spec["shape"]) != list(array.shape):
        raise DatasetError(f"{file}: shape {tuple(array.shape)}, the card says {tuple(spec['shape'])}")
    if "dtype" in spec and np.dtype(spec["dtype"]) != array.dtype:
        raise DatasetError(f"{file}: dtype {array.dtype}, the card says {spec['dtype']}")
    return array


def _check_layout(path: Path, card: dict, rep: st.StateLayout, states: np.ndarray) -> None:
    """The state field has this package's layout: by the card's ``state_layouts`` if it lists one, and by size."""
    want = [[name, size] for name, size in rep.parts]
    saved = card.get("state_layouts", {}).get(rep.name)
    if saved is not None and [list(p) for p in saved] != want:
        raise DatasetError(f"{path}: state_{rep.name} has layout {saved}, this mimic_jax expects {want}")
    if states.ndim != 3 or states.shape[-1] != rep.size:
        raise DatasetError(f"{path}: state_{rep.name}.npy has shape {tuple(states.shape)}, expected "
                           f"[windows, steps, {rep.size}] ({rep.name}: {', '.join(f'{n} {s}' for n, s in rep.parts)})")


def _check_values(path: Path, **arrays) -> None:
    for name, array in arrays.items():
        finite = np.isfinite(np.asarray(array)).reshape(array.shape[0], -1).all(axis=1)
        if not finite.all():
            raise DatasetError(f"{path}: {name}.npy has NaN or inf (first in window {int(np.argmin(finite))})")


def _fingerprint(path: Path, *arrays) -> str:
    h = hashlib.sha256((path / CARD).read_bytes())
    for a in arrays:
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(np.ascontiguousarray(a[: min(len(a), 4)]).tobytes())
    return h.hexdigest()[:16]


def load_dataset(path, representation: str = "body_pos") -> Dataset:
    """The dataset at ``path`` with states of ``representation``; raises :class:`DatasetError` (one line)."""
    path = Path(path).resolve()
    try:
        rep = st.layout(representation)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    card = _read_card(path)
    states = _field(path, card, f"state_{rep.name}")
    _check_layout(path, card, rep, states)
    labels, episode = _field(path, card, "label"), _field(path, card, "episode")
    if labels.shape != states.shape[:2] + (g1.NUM_JOINTS,):
        raise DatasetError(f"{path}: label.npy has shape {tuple(labels.shape)}, expected "
                           f"{tuple(states.shape[:2]) + (g1.NUM_JOINTS,)} (the states' windows and steps)")
    if episode.shape != states.shape[:1]:
        raise DatasetError(f"{path}: episode.npy has shape {tuple(episode.shape)}, expected ({states.shape[0]},)")
    if states.shape[0] == 0:
        raise DatasetError(f"{path}: the dataset has no windows")
    _check_values(path, **{f"state_{rep.name}": states, "label": labels})
    return Dataset(path=path, card=card, representation=rep.name, states=states, labels=labels,
                   episode=np.asarray(episode), fingerprint=_fingerprint(path, states, labels))


def split_episodes(episode: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) window indices: a seeded ``fraction`` of the episodes (at least one if there are
    two or more, never all) is held out with every window it has."""
    ids = np.unique(episode)
    n_val = 0 if len(ids) < 2 or fraction <= 0 else min(len(ids) - 1, max(1, round(fraction * len(ids))))
    held = np.random.default_rng(seed).permutation(ids)[:n_val]
    val = np.isin(episode, held)
    return np.flatnonzero(~val).astype(np.int32), np.flatnonzero(val).astype(np.int32)


@struct.dataclass
class WindowData:
    """The dataset on the device."""

    states: jnp.ndarray  # [W, T, D]
    labels: jnp.ndarray  # [W, T, A]
    train: jnp.ndarray  # [W_train] window indices
    val: jnp.ndarray  # [W_val]


def to_device(ds: Dataset, train: np.ndarray, val: np.ndarray) -> WindowData:
    return WindowData(states=jnp.asarray(np.asarray(ds.states, np.float32)),
                      labels=jnp.asarray(np.asarray(ds.labels, np.float32)),
                      train=jnp.asarray(train), val=jnp.asarray(val))


class Batch(NamedTuple):
    """Training samples in metres: the S = N + H + 1 steps t-N .. t+H, global dims in the frame of step t."""

    states: jnp.ndarray  # [B, S, D]
    actions: jnp.ndarray  # [B, S, A]


def draw_batch(data: WindowData, windows: jnp.ndarray, key, batch: int, history: int, horizon: int,
               rep: st.StateLayout) -> Batch:
    """``batch`` samples from the windows listed in ``windows`` (jit-friendly; see the module doc)."""
    steps, total = history + horizon + 1, data.states.shape[1]
    k_window, k_step = jax.random.split(key)
    window = windows[jax.random.randint(k_window, (batch,), 0, windows.shape[0])]
    current = jax.random.randint(k_step, (batch,), history, total - horizon)  # c in N .. T-1-H

    def segment(w, c):
        s = jax.lax.dynamic_slice_in_dim(data.states[w], c - history, steps)
        a = jax.lax.dynamic_slice_in_dim(data.labels[w], c - history, steps)
        return st.reanchor(rep, s, history), a

    return Batch(*jax.vmap(segment)(window, current))
