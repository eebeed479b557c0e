"""One process per GPU: a launcher, the per-process JAX set-up and the agreement of processes on stopping.

Why processes and not one process driving every GPU: MJX-Warp runs its kernels through Python callbacks
(``warp.jax_callable``), so every physics call on every GPU takes the interpreter lock of the process that
drives it. One process per GPU gives each GPU its own lock, the way torch DDP does; the learner stays one
SPMD program over all the processes' devices (``jax.distributed``, gradients averaged by NCCL on GPUs and
gloo on CPUs).

    supervise([sys.executable, "-m", "mimic_jax.train", ...], num_processes=2)   # parent: spawns, waits

In each child, call ``initialize()`` before anything touches a JAX device. Processes started by another
launcher (SLURM ``srun``, or ``JAX_COORDINATOR_ADDRESS`` + ``JAX_NUM_PROCESSES`` + ``JAX_PROCESS_ID`` set by
hand on each host) join with ``initialize(external=True)``: ``jax.distributed`` does the rest.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import NamedTuple

ENV_COORDINATOR = "MIMIC_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "MIMIC_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "MIMIC_JAX_PROCESS_ID"


def is_child() -> bool:
    """Started by :func:`supervise` (the launcher's variables are set)."""
    return ENV_NUM_PROCESSES in os.environ


def child_index() -> int:
    """This child's process id (0 outside a launcher), known before JAX starts."""
    return int(os.environ.get(ENV_PROCESS_ID, "0"))


_joined = False


def process_index() -> int:
    """``jax.process_index()`` once this process joined its group; before that, its launcher id (0 outside a
    group), without starting JAX."""
    if _joined:
        import jax

        return jax.process_index()
    return child_index()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def initialize(external: bool = False) -> bool:
    """Joins the process group: the one :func:`supervise` started, or with ``external`` one started by SLURM or
    by the ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` variables. False when there is
    none to join."""
    if not is_child() and not external:
        return False
    import jax

    try:  # cross-process collectives on CPU devices (tests); no effect on GPUs
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:
        pass
    if is_child():
        jax.distributed.initialize(coordinator_address=os.environ[ENV_COORDINATOR],
                                   num_processes=int(os.environ[ENV_NUM_PROCESSES]), process_id=child_index())
    else:  # jax.distributed reads JAX_COORDINATOR_ADDRESS itself and detects SLURM
        jax.distributed.initialize(num_processes=_env_int("JAX_NUM_PROCESSES"),
                                   process_id=_env_int("JAX_PROCESS_ID"))
    global _joined
    _joined = True
    return True


initialize_from_env = initialize  # the earlier name (experiments/bench_train.py)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gpu_ids() -> list[str]:
    """GPUs this launcher may hand out, without initializing CUDA in the parent."""
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v for v in visible.split(",") if v.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


class Outcome(NamedTuple):
    """How a group of processes ended: the worst exit code and the first process that failed, if any.
    A code below 0 is a signal (``-9``: killed)."""

    code: int
    codes: tuple[int, ...]
    first_failed: int | None

    def describe(self, i: int) -> str:
        code = self.codes[i]
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"


def _spawn(argv: list[str], num_processes: int, extra_env: dict | None) -> list[subprocess.Popen]:
    gpus = _gpu_ids()
    if gpus and len(gpus) < num_processes:
        raise ValueError(f"{num_processes} processes asked for, {len(gpus)} GPU(s) visible")
    coordinator = f"127.0.0.1:{_free_port()}"
    children = []
    for i in range(num_processes):
        env = dict(os.environ, **(extra_env or {}), **{ENV_COORDINATOR: coordinator,
                                                       ENV_NUM_PROCESSES: str(num_processes), ENV_PROCESS_ID: str(i)})
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i]
        children.append(subprocess.Popen(argv, env=env))
    return children


def _stop(children, codes: dict[int, int], patience: float = 0.0, grace: float = 20.0) -> None:
    """After ``patience`` seconds, SIGTERM to the children still running, SIGKILL ``grace`` seconds later."""
    deadline = time.monotonic() + patience
    for i, child in enumerate(children):
        if i not in codes:
            try:
                codes[i] = child.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                pass
    for i, child in enumerate(children):
        if i not in codes:
            child.terminate()
    deadline = time.monotonic() + grace
    for i, child in enumerate(children):
        if i not in codes:
            try:
                codes[i] = child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                codes[i] = child.wait()


def supervise(argv: list[str], num_processes: int, timeout: float | None = None,
              extra_env: dict | None = None) -> Outcome:
    """Runs ``argv`` in ``num_processes`` processes (one GPU each when there are GPUs) and waits for all.

    When one fails (any non-zero exit or a signal) the others are stopped. Ctrl-C (SIGINT) in the parent is
    passed to every child, which stop together at the end of their iteration (``stop_requested``)."""
    children = _spawn(argv, num_processes, extra_env)

    def forward(signum, frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, forward)
    deadline = None if timeout is None else time.monotonic() + timeout
    codes: dict[int, int] = {}
    first_failed = None
    try:
        while len(codes) < len(children):
            for i, child in enumerate(children):
                if i not in codes and child.poll() is not None:
                    codes[i] = child.returncode
                    if codes[i] != 0 and first_failed is None:
                        first_failed = i
            late = deadline is not None and time.monotonic() > deadline
            if first_failed is not None or late:
                # A process that exited by itself (a user error, Ctrl-C) leaves the others to do the same; one
                # that was killed leaves them waiting in a collective for ever.
                killed = first_failed is not None and codes[first_failed] < 0
                _stop(children, codes, patience=0.0 if killed or late else 60.0)
                if late and first_failed is None:
                    print(f"error: {num_processes} processes did not finish in {timeout:.0f} s", file=sys.stderr)
                    return Outcome(1, tuple(codes[i] for i in range(num_processes)), None)
            time.sleep(0.1)
    finally:
        signal.signal(signal.SIGINT, previous)
    all_codes = tuple(codes[i] for i in range(num_processes))
    return Outcome(max(abs(c) for c in all_codes), all_codes, first_failed)


def launch(argv: list[str], num_processes: int, timeout: float | None = None) -> int:
    """:func:`supervise`, returning only the worst exit code."""
    return supervise(argv, num_processes, timeout).code


class StopFlag:
    """Ctrl-C (SIGINT) in a process of a group: noted, not raised, so that every process stops at the
    same iteration (:meth:`agreed` all-gathers the flags; one process alone stopping would hang the others in
    the next collective)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def agreed(self) -> bool:
        """Whether any process of the group was asked to stop (a collective: every process must call it)."""
        import jax
        import numpy as np
        from jax.experimental import multihost_utils

        if jax.process_count() == 1:
            return self.requested
        return bool(np.any(multihost_utils.process_allgather(np.array([self.requested]))))


def barrier(name: str) -> None:
    """Waits until every process reaches ``name`` (nothing with one process)."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def agreed_int(value: int) -> int:
    """Process 0's ``value`` on every process (e.g. the timestamp in a default run directory name)."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return int(value)
    return int(multihost_utils.broadcast_one_to_all(np.array(value, np.int64)))
