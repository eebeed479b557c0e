"""Batched environments with auto-reset at adaptively sampled start frames.

The sampler statistics are shared by all environments: they live here, beside the batched env state,
never inside the vmapped per-env state. Each control step runs ONE vmapped program per env (physics,
rewards, a freshly sampled reset, and the merge with ``mjx.Data.where``), which is the pattern MJX-Warp
supports for resets.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from mimic_jax import sampling
from mimic_jax.envs import randomize
from mimic_jax.envs.tracking import EnvState, StepInfo, TrackingEnv
from mimic_jax.motion.library import MotionLibrary


@struct.dataclass
class BatchState:
    env: EnvState  # batched over environments
    sampler: sampling.SamplerState
    key: jnp.ndarray


@struct.dataclass
class Transition:
    """What a rollout needs from one batched control step."""

    reward: jnp.ndarray  # [N]
    terminated: jnp.ndarray  # [N] failure: no bootstrap
    truncated: jnp.ndarray  # [N] time limit or clip end: bootstrap from final_obs
    final_obs: dict  # observation before the reset (equals the next obs where nothing reset)
    info: StepInfo
    counts: tuple  # sampler (episode, failure) increments of this step, to be summed across devices


class BatchedEnv:
    """N environments with domain randomization, auto-reset and the adaptive sampler."""

    def __init__(self, env: TrackingEnv, num_envs: int, sampler_cfg: sampling.SamplerConfig):
        self.env = env
        self.cfg = env.cfg
        self.num_envs = int(num_envs)
        self.sampler_cfg = sampler_cfg
        self.template = env.make_data(self.num_envs)
        self.foot_geoms = randomize.foot_geom_ids(env.mj_model)

    def model(self, key):
        """(model, in_axes): batched over envs where randomized, the shared model otherwise."""
        if not self.cfg.randomization.enabled:
            return self.env.mx, jax.tree_util.tree_map(lambda _: None, self.env.mx)
        return randomize.randomize_model(self.env.mx, key, self.num_envs, self.cfg.randomization,
                                         self.foot_geoms, self.env.torso_id)

    def init(self, m, in_axes, lib: MotionLibrary, sampler: sampling.SamplerState, key) -> BatchState:
        k_off, k_sample, k_reset, k_next = jax.random.split(key, 4)
        n = self.num_envs
        offsets = jnp.zeros((n, self.env.action_size))
        if self.cfg.randomization.enabled:
            offsets = randomize.default_joint_offsets(k_off, n, self.cfg.randomization, self.env.action_size)
        default_pos = self.env.default_pos + offsets
        motion_id, frame, start_bin = sampling.sample_starts(sampler, self.sampler_cfg, k_sample, n)
        reset = jax.vmap(self.env.reset, in_axes=(in_axes, None, None, 0, 0, 0, 0, 0))
        env_state = reset(m, lib, self.template, motion_id, frame, start_bin, default_pos,
                          jax.random.split(k_reset, n))
        return BatchState(env=env_state, sampler=sampler, key=k_next)

    def _per_env(self, m, lib, state: EnvState, action, motion_id, frame, start_bin, key):
        stepped, info = self.env.step(m, lib, state, action)
        failed = info.terminated
        time_out = info.time_out & ~failed
        clip_end = info.clip_end & ~failed
        reset_mask = failed | time_out | clip_end
        fresh = self.env.reset(m, lib, stepped.data, motion_id, frame, start_bin, stepped.default_pos, key)
        if self.cfg.on_clip_end == "resample":
            # The public code keeps the episode clock running when the clip ends and the reference jumps.
            keep_clock = clip_end & ~time_out
            fresh = fresh.replace(step=jnp.where(keep_clock, stepped.step, 0))
        merged_data = stepped.data.where(reset_mask, fresh.data)
        rest = jax.tree_util.tree_map(lambda a, b: jnp.where(reset_mask, a, b),
                                      fresh.replace(data=None), stepped.replace(data=None))
        merged = rest.replace(data=merged_data)
        flags = (failed, time_out | clip_end, reset_mask, stepped.start_bin, stepped.frame, stepped.motion_id)
        return merged, info, stepped.obs, flags

    def step(self, m, in_axes, lib: MotionLibrary, bs: BatchState, action) -> tuple[BatchState, Transition]:
        key, k_sample, k_reset = jax.random.split(bs.key, 3)
        n = self.num_envs
        motion_id, frame, start_bin = sampling.sample_starts(bs.sampler, self.sampler_cfg, k_sample, n)
        per_env = jax.vmap(self._per_env, in_axes=(in_axes, None, 0, 0, 0, 0, 0, 0))
        env_state, info, final_obs, flags = per_env(m, lib, bs.env, action, motion_id, frame, start_bin,
                                                    jax.random.split(k_reset, n))
        failed, truncated, reset_mask, old_bin, end_frame, old_motion = flags
        end_bin = sampling.bin_of_frame(bs.sampler, old_motion, end_frame)
        counts = sampling.sampler_counts(bs.sampler, self.sampler_cfg, old_bin, failed, end_bin, reset_mask)
        transition = Transition(reward=info.reward, terminated=failed, truncated=truncated, final_obs=final_obs,
                                info=info, counts=counts)
        return bs.replace(env=env_state, key=key), transition


def with_sampler_overrides(cfg: sampling.SamplerConfig, overrides: dict) -> sampling.SamplerConfig:
    """Applies a motion set's ``sampler:`` section; unknown keys are an error naming them."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown sampler settings: {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    return dataclasses.replace(cfg, **overrides)
