"""Writing an export: the ONNX, its ``deploy.yaml`` and the robot model, side by side and atomically.

:func:`check_destination` refuses, before any work, a destination that cannot be written (not ``.onnx``, an
existing directory, a parent that is a file, a read-only or immutable place). :func:`write_files` writes
every file to a temporary name first and renames them only when all are complete; on any error the
temporary files are removed and one :class:`ExportError` line names the path and the reason.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mimic_jax.assets.build_g1 import SCENE_XML
from mimic_jax.deploy.config import DEPLOY_FILE
from mimic_jax.deploy.model import model_files
from mimic_jax.export.actor import ExportError


def _existing_ancestor(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def check_destination(path: str | os.PathLike) -> Path:
    """``path`` if an export can be written there (probed by creating and removing a file); else ExportError."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a directory; name the file to write, e.g. {path / 'policy.onnx'}")
    if path.suffix.lower() != ".onnx":
        raise ExportError(f"{path}: the file name must end in .onnx")
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        raise ExportError(f"{path}: {base} is not a directory")
    for name in [DEPLOY_FILE] + [p.name for p in model_files(SCENE_XML)]:
        if (path.parent / name).is_dir():
            raise ExportError(f"{path}: {path.parent / name} is a directory; the export writes a file there")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".mimic_jax-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write in {base} ({_reason(exc)})") from None
    return path


def write_files(folder: Path, files: dict[str, bytes], *, what) -> list[Path]:
    """Writes ``files`` (name -> content) into ``folder``: all to temporary names, then renamed."""
    folder = Path(folder)
    umask = os.umask(0)
    os.umask(umask)
    temps: dict[str, str] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            temps[name] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600: give the files ordinary permissions
        for name, tmp in temps.items():
            os.replace(tmp, folder / name)
    except OSError as exc:
        raise ExportError(f"{what}: cannot write {exc.filename or folder} ({_reason(exc)})") from None
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [folder / name for name in files]


def export_deployment(path: str | os.PathLike, policy, *, lib=None, motion: str | None = None,
                      one_hot=None) -> list[Path]:
    """Writes ``path`` (the ONNX), ``deploy.yaml`` and the robot model beside it; returns the written paths."""
    from mimic_jax.export.deploy_config import to_yaml
    from mimic_jax.export.onnx import prepare

    path = check_destination(path)
    model, config = prepare(policy, lib=lib, motion=motion, one_hot=one_hot, onnx_file=path.name)
    files = {path.name: model.SerializeToString(), DEPLOY_FILE: to_yaml(config).encode()}
    for name in config["model"]["files"]:
        files[name] = (SCENE_XML.parent / name).read_bytes()
    return write_files(path.parent, files, what=path)
