"""Dataset storage: one memory-mappable ``.npy`` per field, ``episodes/`` per episode, a card (JSON + markdown).

Writing (:class:`DatasetWriter`) goes into a hidden temporary directory beside the target and is renamed onto
it only when every window is written and the card is complete, so an interrupted or failed collection leaves
nothing that looks like a dataset (a killed process leaves a ``.NAME.partial-*`` directory without a card).
Arrays are preallocated with ``np.lib.format.open_memmap`` and filled chunk by chunk; host memory holds one
chunk. An existing target is refused unless ``replace``; only a dataset (a directory with our card) or an
empty directory is ever replaced.

Reading (:func:`open_dataset`) needs only numpy: ``np.load(DATA / "label.npy", mmap_mode="r")`` works too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from mimic_jax.collect import card as card_lib
from mimic_jax.collect import schema
from mimic_jax.collect.stats import RunningStats


class DatasetError(ValueError):
    """A dataset path that cannot be used; one line naming it and the problem."""


def is_dataset(path: Path) -> bool:
    return (Path(path) / schema.CARD_JSON).is_file()


def check_target(out: Path, replace: bool) -> None:
    """Refuses an existing target without ``replace``, and anything but a dataset or an empty dir with it."""
    out = Path(out)
    if not out.exists():
        return
    if not replace:
        raise DatasetError(f"{out} already exists; pass --replace to overwrite it")
    if not out.is_dir() or (not is_dataset(out) and any(out.iterdir())):
        raise DatasetError(f"{out} is not a mimic_jax dataset (no {schema.CARD_JSON}); refusing to replace it")


class DatasetWriter:
    """Writes ``windows`` windows of ``window_steps`` steps into ``out`` (see the module doc).

    Use as a context manager: an exception (Ctrl-C included) inside the block removes the temporary directory.
    """

    def __init__(self, out, fields: Mapping[str, schema.Field], windows: int, window_steps: int, *,
                 replace: bool = False):
        self.out = Path(out).resolve()
        check_target(self.out, replace)
        self.fields, self.windows, self.window_steps, self.replace = dict(fields), int(windows), window_steps, replace
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        self.arrays = {name: np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+", dtype=np.dtype(f.dtype),
                                                       shape=schema.full_shape(f, self.windows, window_steps))
                       for name, f in self.fields.items()}
        self.stats = {name: RunningStats(self.fields[name].shape) for name in schema.statistics_fields(self.fields)}
        self.count = 0
        self._episodes: list[dict[str, np.ndarray]] = []

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    @property
    def remaining(self) -> int:
        return self.windows - self.count

    def append(self, rows: Mapping[str, np.ndarray]) -> None:
        """Writes the next windows (every field, [n, ...] each) and folds them into the statistics."""
        if set(rows) != set(self.fields):
            raise KeyError(f"rows have fields {sorted(rows)}, the dataset {sorted(self.fields)}")
        n = int(np.shape(rows["motion_id"])[0])
        if n > self.remaining:
            raise ValueError(f"{n} windows do not fit: {self.remaining} of {self.windows} left")
        for name, values in rows.items():
            self.arrays[name][self.count:self.count + n] = values
            if name in self.stats:
                self.stats[name].update(values)
        self.count += n

    def add_episodes(self, table: Mapping[str, np.ndarray]) -> None:
        """Rows of the per-episode table (``schema.EPISODE_FIELDS``, [n] each)."""
        if set(table) != set(schema.EPISODE_FIELDS):
            raise KeyError(f"episode rows have {sorted(table)}, expected {sorted(schema.EPISODE_FIELDS)}")
        self._episodes.append({k: np.asarray(v, schema.EPISODE_FIELDS[k][0]) for k, v in table.items()})

    def finish(self, card: dict) -> Path:
        """Completes the card (fields, sizes, statistics), writes it last and renames the dataset into place."""
        if self.count != self.windows:
            raise ValueError(f"{self.count} of {self.windows} windows written")
        for array in self.arrays.values():
            array.flush()
        self.arrays.clear()
        (self.tmp / schema.EPISODES).mkdir()
        for name in schema.EPISODE_FIELDS:
            column = [rows[name] for rows in self._episodes]
            np.save(self.tmp / schema.EPISODES / f"{name}.npy",
                    np.concatenate(column) if column else np.zeros(0, schema.EPISODE_FIELDS[name][0]))
        full = self._complete(card)
        (self.tmp / schema.CARD_MD).write_text(card_lib.markdown(full))
        (self.tmp / schema.CARD_JSON).write_text(json.dumps(full, indent=1) + "\n")
        self._rename()
        return self.out

    def _complete(self, card: dict) -> dict:
        sizes = {name: os.path.getsize(self.tmp / f"{name}.npy") for name in self.fields}
        return {"format": schema.FORMAT, "version": schema.VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **card, "windows": self.windows, "window_steps": self.window_steps,
                "frames": self.windows * self.window_steps, "bytes": int(sum(sizes.values())),
                "fields": {name: {"shape": list(schema.full_shape(f, self.windows, self.window_steps)),
                                  "dtype": f.dtype, "per_step": f.per_step, "meaning": f.meaning,
                                  "bytes": sizes[name]} for name, f in self.fields.items()},
                "statistics": {name: s.summary() for name, s in self.stats.items()}}

    def _rename(self) -> None:
        check_target(self.out, self.replace)  # the target may have appeared while collecting
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / "data")
            os.replace(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """An opened dataset: its card, its fields (read-only memory maps) and its per-episode table."""

    path: Path
    card: dict
    arrays: Mapping[str, np.ndarray]
    episodes: Mapping[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def num_windows(self) -> int:
        return int(self.card["windows"])


def read_card(path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset directory")
    if not is_dataset(path):
        raise DatasetError(f"{path}: not a mimic_jax dataset (no {schema.CARD_JSON})")
    try:
        card = json.loads((path / schema.CARD_JSON).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path / schema.CARD_JSON}: unreadable ({exc.__class__.__name__})") from None
    if not isinstance(card, dict) or card.get("format") != schema.FORMAT:
        raise DatasetError(f"{path / schema.CARD_JSON}: not a {schema.FORMAT} card")
    if card.get("version") != schema.VERSION:
        raise DatasetError(f"{path}: dataset format version {card.get('version')}, this mimic_jax reads "
                           f"{schema.VERSION}")
    return card


def open_dataset(path, *, mmap: bool = True) -> Dataset:
    """Opens a dataset; refuses (one line) a missing field or one whose shape or dtype differs from the card."""
    path = Path(path)
    card = read_card(path)
    arrays = {}
    for name, spec in card["fields"].items():
        file = path / f"{name}.npy"
        if not file.is_file():
            raise DatasetError(f"{path}: field {name} is missing ({file.name})")
        array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
            raise DatasetError(f"{file}: shape {list(array.shape)} {array.dtype}, the card says {spec['shape']} "
                               f"{spec['dtype']}")
        arrays[name] = array
    episodes = {name: np.load(path / schema.EPISODES / f"{name}.npy", allow_pickle=False)
                for name in schema.EPISODE_FIELDS if (path / schema.EPISODES / f"{name}.npy").is_file()}
    return Dataset(path=path, card=card, arrays=arrays, episodes=episodes)
