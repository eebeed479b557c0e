import os
import tempfile

# Must be set before JAX initialises: single-threaded Eigen avoids a CPU deadlock in vmapped MJX steps.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the whole session, shared by the pytest-xdist workers and inherited by
# every subprocess the tests start (the training, evaluation and notebook CLIs): the same program (same shapes
# and settings) compiles once per session instead of once per process. A fresh directory each session (named
# by xdist's run id, the same in every worker), so nothing stale is ever read.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"mimic-jax-test-xla-cache-{run_id}")
