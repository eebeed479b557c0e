"""Phase 2: a diffusion model over future states and actions (Diffuse-CLoC / BeyondMimic), in JAX + Flax.

Modules: ``config`` (settings and presets), ``schedule`` (DDPM maths), ``normalize`` (z-score + emphasis
projection), ``model`` (the masked transformer), ``objective`` (the training loss), ``data`` (datasets and
on-device windows), ``learner`` (the jitted training call), ``checkpoint`` (runs on disk), ``train`` (the
CLI), ``sample`` (the guided K-step sampler), ``policy`` (the closed-loop controller), ``synthetic`` (a small
dataset from built-in clips). See docs/phase2.md.
"""
