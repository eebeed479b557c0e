"""mimic_jax: a JAX-native BeyondMimic-style motion-tracking trainer for the Unitree G1 (29 DoF)."""

import os as _os

# JAX's multi-threaded CPU runtime deadlocked in vmapped MJX steps on small (2-core) machines; single
# threaded Eigen made them run, and faster. These flags only touch the CPU backend, so they are harmless on
# a GPU. We never override flags the user set.
if "XLA_FLAGS" not in _os.environ:
    _os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

__version__ = "0.1.0"

from mimic_jax.backend import quiet_missing_warp as _quiet_missing_warp  # noqa: E402

_quiet_missing_warp()  # MJX's "Failed to import warp" lines on machines without Warp (see mimic_jax.backend)
