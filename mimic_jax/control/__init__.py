"""Guided control with the phase-2 diffusion model: differentiable costs on predicted states (joystick,
waypoint, obstacles, keyframes), the scenes and benchmark protocols they are measured on, the metrics, and
``python -m mimic_jax.control play|bench``. See docs/phase2.md, "Guidance and control"."""
