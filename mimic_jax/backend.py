"""The one place where the MJX backend is chosen: ``impl="warp"`` on a GPU, ``impl="jax"`` elsewhere.

Everything that takes an ``--impl auto|jax|warp`` flag (train, eval, the experiments) calls
:func:`resolve_impl`; nothing else looks at ``jax.default_backend()`` to pick the physics.

MuJoCo MJX prints "Failed to import warp" (twice) on every import where Warp is not installed, which is
every CPU machine here; :func:`quiet_missing_warp` (installed by ``mimic_jax/__init__.py``) drops exactly
those two lines when the ``warp`` package is absent. When Warp is installed, nothing is filtered, so a
broken Warp on a GPU still says why.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import sys

IMPLS = ("auto", "jax", "warp")
_WARP_MODULE = "mujoco.mjx.warp"
_NOISE = ("Failed to import warp: No module named 'warp'", "Failed to import mujoco_warp: No module named 'warp'")


class BackendError(ValueError):
    """An MJX backend that cannot run here; one line."""


def resolve_impl(impl: str = "auto") -> str:
    """``'auto'`` -> ``'warp'`` on a GPU, else ``'jax'``; ``'warp'`` without a GPU is a :class:`BackendError`."""
    import jax

    if impl not in IMPLS:
        raise BackendError(f"--impl must be one of {', '.join(IMPLS)}, got '{impl}'")
    backend = jax.default_backend()
    if impl == "auto":
        return "warp" if backend == "gpu" else "jax"
    if impl == "warp" and backend != "gpu":
        raise BackendError(f"--impl warp needs a GPU (JAX's backend here is {backend}); use --impl jax")
    return impl


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader with stdout captured and prints back every line but MJX's missing-Warp notes."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                self.loader.exec_module(module)
        finally:
            kept = [line for line in buffer.getvalue().splitlines() if line not in _NOISE]
            if kept:
                print("\n".join(kept))


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _WARP_MODULE:
            return None
        sys.meta_path.remove(self)  # find the real module once, then step aside
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_missing_warp() -> None:
    """Drops MJX's "Failed to import warp" lines, only where the ``warp`` package is not installed."""
    if _WARP_MODULE in sys.modules or importlib.util.find_spec("warp") is not None:
        return
    if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
