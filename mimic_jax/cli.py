"""What every command line here shares: one error style, output-path checks and Ctrl-C around writes.

The promise of ``train``, ``eval`` and ``motions``: every user error prints ONE line ``error: ...`` on
stderr (usage errors end with a hint to ``--help``) and exits with status 2, with nothing half-written
and no progress-bar leftover on that line; Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """A bad command line; one line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors raise :class:`UsageError` (one line plus a ``--help`` hint, no usage dump);
    its subparsers are of the same class."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def dotted_settings(extra: list[str], prog: str) -> list[str]:
    """Config flags in tyro's spelling, as mjlab users type them (``--ppo.learning-rate 3e-4``,
    ``--ppo.hidden-sizes 256 128``, ``--env.on-clip-end=truncate``) -> ``--set`` items (``ppo.learning_rate=3e-4``);
    ``extra`` is what argparse did not recognize, and anything but such a flag is a :class:`UsageError`."""
    out, i = [], 0
    while i < len(extra):
        flag = extra[i]
        key, eq, value = flag[2:].partition("=")
        if not flag.startswith("--") or "." not in key:
            raise UsageError(f"unrecognized arguments: {' '.join(extra[i:])} (see {prog} --help)")
        i += 1
        values = [value] if eq else []
        while not eq and i < len(extra) and not extra[i].startswith("--"):
            values.append(extra[i])
            i += 1
        if not values:
            raise UsageError(f"{flag} needs a value (see {prog} --help)")
        out.append(f"{key.replace('-', '_')}={','.join(values)}")
    return out


def close_progress_bars() -> None:
    """Closes every open tqdm bar, so that its leftover is cleared before a message is printed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def fail(exc: BaseException | str, code: int = EXIT_USAGE) -> int:
    """Prints ``error: <exc>`` on its own line of stderr and returns ``code``."""
    close_progress_bars()
    sys.stdout.flush()
    text = " ".join(str(exc).split("\n")).strip() or type(exc).__name__
    print(f"error: {text}", file=sys.stderr, flush=True)
    return code


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: Path, flag: str, *, kind: str) -> None:
    """Refuses, before any work, an output ``path`` that cannot be written: ``kind`` 'file' refuses an
    existing directory, 'directory' an existing file; a read-only place or a file in the way is refused."""
    path = Path(path)
    if kind == "directory" and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a directory")
    if kind == "file" and path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory")
    parent = _nearest_existing(path.resolve().parent if kind == "file" else path.resolve())
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write in {parent} ({exc.strerror or type(exc).__name__})") from None


@contextlib.contextmanager
def deferred_interrupts():
    """Holds Ctrl-C (SIGINT) until the block ends, then delivers it once: a write is never cut half-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and previous is signal.default_int_handler:
        raise KeyboardInterrupt
    if caught and callable(previous):
        previous(signal.SIGINT, None)


@contextlib.contextmanager
def ignored_interrupts():
    """Ignores Ctrl-C inside the block (the last save of a run that is already stopping)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (links resolved); False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
