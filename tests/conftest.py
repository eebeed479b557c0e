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

# The slowest test files first (measured CPU time, heaviest first; the rest keep their order): with
# --no-loadscope-reorder (pyproject.toml) pytest-xdist's --dist loadfile hands files out in collection order,
# so a heavy file no longer starts last and runs alone while the other worker idles (the two-process CLI
# tests did that, being a file of few tests, which xdist's default order puts last: about 4 minutes).
# test_train's first run is test_errors' run (the same command): apart, the later one reads the compiled
# programs from the shared cache instead of compiling them at the same time on the other worker.
HEAVY_FIRST = ("test_processes.py", "test_notebooks.py", "test_eval.py", "test_errors.py", "test_multidevice.py",
               "test_env.py", "test_control.py", "test_diffusion.py", "test_train.py", "test_ppo.py",
               "test_collect.py", "test_mismatch.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order in a file
