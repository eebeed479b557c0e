"""Motion sets: named lists of clips (with optional frame ranges and sampling weights) in YAML.

A set lives in ``<motions>/sets/NAME.yaml``, where ``<motions>`` is ``$MIMIC_JAX_MOTIONS``, else
``./motions``, else the ``motions`` folder next to the package::

    name: locomotion_basic            # optional; must equal the file name if given
    description: text                 # optional
    clips:
      - path: ../clips/walk.npz       # relative to the YAML file; any importable motion file
        frames: [0, 400]              # optional [start, end) at 50 fps (null end = clip end)
        weight: 1.0                   # optional sampling weight (> 0)
        label: walk                   # optional; defaults to the file stem, made unique
    sampler:                          # optional overrides of mimic_jax.sampling.SamplerConfig fields
      bin_size_seconds: 1.0

Unknown keys are errors. Every problem raises :class:`MotionSetError` (a :class:`MotionFileError`) with
one line naming the YAML (or the clip) and the problem.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
import yaml

import mimic_jax
from mimic_jax.motion.clip import CLIP_FPS, Clip, MotionFileError, is_clip_file
from mimic_jax.motion.formats import check_frame_range, import_motion, slice_clip

SET_KEYS = frozenset({"name", "description", "clips", "sampler"})
ENTRY_KEYS = frozenset({"path", "frames", "weight", "label"})
MOTION_SUFFIXES = (".npz", ".csv", ".txt")


class MotionSetError(MotionFileError):
    """A motion set that cannot be used; one line naming the set file and the problem."""


@dataclasses.dataclass(frozen=True)
class MotionSetEntry:
    """One clip of a set: file, optional ``[start, end)`` range at 50 fps, sampling weight, unique label."""

    path: Path
    frames: tuple[int, int | None] | None = None
    weight: float = 1.0
    label: str = ""


@dataclasses.dataclass(frozen=True)
class MotionSetSpec:
    """A resolved motion set. ``source`` is the YAML file (``None`` for a comma-separated list)."""

    name: str
    description: str
    entries: tuple[MotionSetEntry, ...]
    sampler: Mapping[str, object] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    source: Path | None = None


def motions_dir() -> Path:
    """``$MIMIC_JAX_MOTIONS``, else ``./motions``, else the ``motions`` folder beside the package."""
    env = os.environ.get("MIMIC_JAX_MOTIONS")
    if env:
        return Path(env)
    local = Path.cwd() / "motions"
    if local.is_dir():
        return local
    return Path(mimic_jax.__file__).resolve().parents[1] / "motions"


def sets_dir() -> Path:
    """The folder holding the set YAML files."""
    return motions_dir() / "sets"


def list_motion_sets() -> list[str]:
    """Names of the sets under :func:`sets_dir`, sorted."""
    folder = sets_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _unique_labels(labels: list[str], explicit: list[bool], where) -> list[str]:
    fixed = [lab for lab, e in zip(labels, explicit) if e]
    if len(set(fixed)) != len(fixed):
        raise MotionSetError(f"{where}: duplicate clip labels {sorted({x for x in fixed if fixed.count(x) > 1})}")
    taken, out = set(fixed), []
    for label, is_explicit in zip(labels, explicit):
        if not is_explicit:
            base, n = label, 2
            while label in taken:
                label, n = f"{base}_{n}", n + 1
            taken.add(label)
        out.append(label)
    return out


def _clip_list_spec(text: str) -> MotionSetSpec:
    paths = [Path(p.strip()) for p in text.split(",") if p.strip()]
    if not paths:
        raise MotionSetError(f"'{text}': empty clip list")
    for p in paths:
        if not p.is_file():
            raise MotionSetError(f"{p}: no such clip file")
    labels = _unique_labels([p.stem for p in paths], [False] * len(paths), text)
    entries = tuple(MotionSetEntry(path=p, label=lab) for p, lab in zip(paths, labels))
    return MotionSetSpec(name="+".join(labels), description="clips given on the command line", entries=entries)


def _parse_frames(where, value) -> tuple[int, int | None] | None:
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], int) and \
        (value[1] is None or isinstance(value[1], int))
    if not ok or value[0] < 0 or (value[1] is not None and value[1] - value[0] < 2):
        raise MotionSetError(f"{where}: frames must be [start, end) with 0 <= start, end - start >= 2, got {value}")
    return int(value[0]), value[1]


def _parse_entry(yaml_path: Path, index: int, item) -> tuple[MotionSetEntry, bool]:
    where = f"{yaml_path}: clips[{index}]"
    if not isinstance(item, dict):
        raise MotionSetError(f"{where}: expected a mapping with 'path', got {item!r}")
    unknown = sorted(set(item) - ENTRY_KEYS)
    if unknown or "path" not in item:
        raise MotionSetError(f"{where}: unknown keys {unknown} or no 'path' (allowed: {', '.join(sorted(ENTRY_KEYS))})")
    path = (yaml_path.parent / str(item["path"])).resolve()
    if not path.is_file():
        raise MotionSetError(f"{where}: clip file {path} does not exist")
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight <= 0:
        raise MotionSetError(f"{where}: weight must be a positive number, got {weight!r}")
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or not label):
        raise MotionSetError(f"{where}: label must be a non-empty string, got {label!r}")
    entry = MotionSetEntry(path=path, frames=_parse_frames(where, item.get("frames")), weight=float(weight),
                           label=label or path.stem)
    return entry, label is not None


def _parse_sampler(yaml_path: Path, overrides) -> Mapping[str, object]:
    if overrides is None:
        return MappingProxyType({})
    if not isinstance(overrides, dict):
        raise MotionSetError(f"{yaml_path}: sampler must be a mapping of SamplerConfig fields")
    from mimic_jax.sampling import SamplerConfig  # imports JAX: only when a set overrides the sampler

    fields = {f.name for f in dataclasses.fields(SamplerConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise MotionSetError(f"{yaml_path}: unknown sampler keys {unknown} (SamplerConfig fields: "
                             f"{', '.join(sorted(fields))})")
    return MappingProxyType(dict(overrides))


def load_set_yaml(yaml_path: str | os.PathLike) -> MotionSetSpec:
    """Parses and checks one motion-set YAML file (clip files must exist; frames are checked on load)."""
    yaml_path = Path(yaml_path).resolve()
    try:
        raw = yaml.safe_load(yaml_path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionSetError(f"{yaml_path}: unreadable ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise MotionSetError(f"{yaml_path}: not valid YAML{at}") from None
    if not isinstance(raw, dict):
        raise MotionSetError(f"{yaml_path}: expected a mapping with 'clips'")
    unknown = sorted(set(raw) - SET_KEYS)
    if unknown:
        raise MotionSetError(f"{yaml_path}: unknown keys {unknown} (allowed: {', '.join(sorted(SET_KEYS))})")
    name = raw.get("name", yaml_path.stem)
    if name != yaml_path.stem:
        raise MotionSetError(f"{yaml_path}: name '{name}' differs from the file name '{yaml_path.stem}'")
    clips = raw.get("clips")
    if not isinstance(clips, list) or not clips:
        raise MotionSetError(f"{yaml_path}: 'clips' must be a non-empty list")
    parsed = [_parse_entry(yaml_path, i, item) for i, item in enumerate(clips)]
    labels = _unique_labels([e.label for e, _ in parsed], [x for _, x in parsed], yaml_path)
    entries = tuple(dataclasses.replace(e, label=lab) for (e, _), lab in zip(parsed, labels))
    return MotionSetSpec(name=str(name), description=str(raw.get("description") or ""), entries=entries,
                         sampler=_parse_sampler(yaml_path, raw.get("sampler")), source=yaml_path)


def resolve_motion_set(name_or_list: str) -> MotionSetSpec:
    """A set name, a path to a set YAML, or a comma-separated list of motion files -> :class:`MotionSetSpec`."""
    text = str(name_or_list).strip()
    if "," in text or text.lower().endswith(MOTION_SUFFIXES):
        return _clip_list_spec(text)
    if text.lower().endswith((".yaml", ".yml")) or os.sep in text:
        if not Path(text).is_file():
            raise MotionSetError(f"{text}: no such motion-set file")
        return load_set_yaml(text)
    for suffix in (".yaml", ".yml"):
        candidate = sets_dir() / f"{text}{suffix}"
        if candidate.is_file():
            return load_set_yaml(candidate)
    available = ", ".join(list_motion_sets()) or "none"
    raise MotionSetError(f"unknown motion set '{text}' in {sets_dir()} (available: {available})")


def _where(spec: MotionSetSpec, entry: MotionSetEntry) -> str:
    return f"{spec.source}: clip {entry.label} ({entry.path})" if spec.source else str(entry.path)


def load_entry(spec: MotionSetSpec, entry: MotionSetEntry, *, model=None) -> Clip:
    """One entry's clip (imported on the fly if it is not a clip file), cut to its frame range."""
    clip = import_motion(entry.path, model=model)
    return slice_clip(clip, entry.frames, _where(spec, entry))


def load_motion_set(spec: MotionSetSpec, *, progress: bool = False, model=None) -> list[tuple[str, Clip, float]]:
    """``(label, clip, weight)`` for every entry, frame ranges applied."""
    entries = spec.entries
    if progress:
        from tqdm import tqdm

        entries = tqdm(entries, desc=f"loading {spec.name}", unit="clip", leave=False)
    return [(e.label, load_entry(spec, e, model=model), e.weight) for e in entries]


def entry_num_frames(spec: MotionSetSpec, entry: MotionSetEntry) -> int:
    """Frames (50 fps) an entry contributes; reads only the root positions of clip files."""
    try:
        with np.load(entry.path, allow_pickle=False) as data:
            total = int(data["root_pos"].shape[0]) if is_clip_file(data) else None
    except Exception:  # not an npz or unreadable: import it to get a clear error or the count
        total = None
    if total is None:
        total = import_motion(entry.path).num_frames
    start, end = check_frame_range(_where(spec, entry), entry.frames, total, unit="frames at 50 fps")
    return end - start


def set_seconds(spec: MotionSetSpec) -> float:
    """Total duration of a set in seconds."""
    return sum(entry_num_frames(spec, e) for e in spec.entries) / CLIP_FPS
