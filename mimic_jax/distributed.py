"""One process per GPU: a launcher and the per-process JAX set-up.

Why processes and not one process driving every GPU: MJX-Warp runs its kernels through Python callbacks
(``warp.jax_callable``), so every physics call on every GPU takes the interpreter lock of the process that
drives it. One process per GPU gives each GPU its own lock, the way torch DDP does; the learner stays one
SPMD program over all the processes' devices (``jax.distributed``, gradients averaged by NCCL on GPUs and
gloo on CPUs).

    launch([sys.executable, "-m", "mimic_jax.train", ...], num_processes=2)   # parent: spawns, waits

In each child, call ``initialize_from_env()`` before anything touches a JAX device.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

ENV_COORDINATOR = "MIMIC_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "MIMIC_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "MIMIC_JAX_PROCESS_ID"


def is_child() -> bool:
    return ENV_NUM_PROCESSES in os.environ


def initialize_from_env() -> bool:
    """Joins the process group described by the launcher's environment variables; False when there is none."""
    if not is_child():
        return False
    import jax

    try:  # cross-process collectives on CPU devices (tests); no effect on GPUs
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:
        pass
    jax.distributed.initialize(coordinator_address=os.environ[ENV_COORDINATOR],
                               num_processes=int(os.environ[ENV_NUM_PROCESSES]),
                               process_id=int(os.environ[ENV_PROCESS_ID]))
    return True


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


def launch(argv: list[str], num_processes: int, timeout: float | None = None) -> int:
    """Runs ``argv`` in ``num_processes`` processes (one GPU each when there are GPUs); returns the worst exit
    code. When one child fails, the others are stopped."""
    gpus = _gpu_ids()
    if gpus and len(gpus) < num_processes:
        raise ValueError(f"{num_processes} processes asked for, {len(gpus)} GPU(s) visible")
    coordinator = f"127.0.0.1:{_free_port()}"
    children = []
    for i in range(num_processes):
        env = dict(os.environ, **{ENV_COORDINATOR: coordinator, ENV_NUM_PROCESSES: str(num_processes),
                                  ENV_PROCESS_ID: str(i)})
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i]
        children.append(subprocess.Popen(argv, env=env))
    deadline = None if timeout is None else time.monotonic() + timeout
    codes: dict[int, int] = {}
    while len(codes) < len(children):
        for i, child in enumerate(children):
            if i not in codes and child.poll() is not None:
                codes[i] = child.returncode
        failed = any(c != 0 for c in codes.values())
        late = deadline is not None and time.monotonic() > deadline
        if failed or late:
            for i, child in enumerate(children):
                if i not in codes:
                    child.terminate()
                    codes[i] = child.wait() or 1
            if late and not failed:
                print(f"error: {num_processes} processes did not finish in {timeout:.0f} s", file=sys.stderr)
        time.sleep(0.2)
    return max(abs(c) for c in codes.values())
