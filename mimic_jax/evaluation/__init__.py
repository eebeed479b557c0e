"""Evaluation of trained policies: metrics, MJX and MuJoCo (sim-to-sim) episodes, reports and video.

See ``docs/evaluation.md``; the command line is ``python -m mimic_jax.eval``.
"""
