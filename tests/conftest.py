import os

# Must be set before JAX initialises: single-threaded Eigen avoids a CPU deadlock in vmapped MJX steps.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
