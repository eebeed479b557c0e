"""Deployment without JAX: open an exported policy folder and run it on MuJoCo C (docs/deploy.md).

Every module of this package imports only numpy, onnxruntime, mujoco and PyYAML (imageio for videos), so a
robot controller can use or copy it; ``tests/test_deploy.py`` checks that running it imports no JAX.
"""
