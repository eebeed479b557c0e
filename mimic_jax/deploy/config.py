"""The deployment config (``deploy.yaml``): reading it and comparing it with the copy inside the ONNX.

The export writes the same nested mapping twice: as ``deploy.yaml`` beside the ONNX (with comments) and as
JSON in the ONNX metadata key ``deploy_config``. Both are produced by one function
(``mimic_jax.export.deploy_config.deploy_config``); :func:`first_difference` finds where two copies part.
The sections are described in docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

FORMAT = "mimic_jax-deploy/1"
DEPLOY_FILE = "deploy.yaml"  # written beside the ONNX
METADATA_KEY = "deploy_config"
SECTIONS = ("format", "mimic_jax_version", "policy", "control", "joints", "default_joint_pos", "action",
            "observation", "sensors", "bodies", "motion", "model", "terminations")


class DeployError(ValueError):
    """An exported policy folder that cannot be run as asked; one line naming the file and the problem."""


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_config(path: str | os.PathLike) -> dict:
    """``deploy.yaml`` as a mapping; refuses a file that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"{path}: no such file")
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DeployError(f"{path}: not a readable YAML file ({exc.__class__.__name__})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise DeployError(f"{path}: not a mimic_jax deploy config (format {got!r}, expected {FORMAT!r})")
    missing = [s for s in SECTIONS if s not in config]
    if missing:
        raise DeployError(f"{path}: incomplete deploy config (missing {', '.join(missing)})")
    return config


def from_metadata(meta: dict[str, str], where: str) -> dict:
    """The deploy config stored in an ONNX's metadata."""
    if METADATA_KEY not in meta:
        raise DeployError(f"{where}: no '{METADATA_KEY}' in its metadata (exported by an older mimic_jax?); "
                          "export it again")
    try:
        return json.loads(meta[METADATA_KEY])
    except json.JSONDecodeError:
        raise DeployError(f"{where}: its '{METADATA_KEY}' metadata is not valid JSON") from None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def first_difference(a, b, where: str = "") -> str | None:
    """The first key path where nested mappings/lists ``a`` and ``b`` differ, with both values; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{where}{key} ({'missing in the first' if key not in a else 'missing in the second'})"
            found = first_difference(a[key], b[key], f"{where}{key}.")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where.rstrip('.')} ({len(a)} vs {len(b)} entries)"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{where.rstrip('.')}[{i}].")
            if found:
                return found
        return None
    if a != b or type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return f"{where.rstrip('.')} ({_short(a)} vs {_short(b)})"
    return None
