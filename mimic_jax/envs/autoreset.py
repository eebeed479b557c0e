"""Batched environments with auto-reset at adaptively sampled start frames.

The sampler statistics are shared by all environments: they live here, beside the batched env state,
never inside the vmapped per-env state. Each control step runs ONE vmapped program per env (physics,
rewards, a freshly sampled reset, and the merge with ``mjx.Data.where``), which is the pattern MJX-Warp
supports for resets.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from mimic_jax import sampling
from mimic_jax.envs.episodes import World, make_world, select_state
from mimic_jax.envs.tracking import EnvState, StepInfo, TrackingEnv
from mimic_jax.motion.library import MotionLibrary

RESET_SALT = 0x2E5E7  # start and reset-noise keys are fold_in(env rng, salt): drawn per environment


@struct.dataclass
class BatchState:
    env: EnvState  # batched over environments
    sampler: sampling.SamplerState


class ResetFlags(NamedTuple):
    """Per environment: how its step ended, and where the episode (or clip segment) that ended had started."""

    failed: jax.Array  # terminated (a failure)
    truncated: jax.Array  # time limit or clip end, not a failure
    reset: jax.Array  # restarted at a fresh start this step
    start_bin: jax.Array  # sampler bin the ended segment started in
    end_frame: jax.Array  # reference frame it ended at
    motion_id: jax.Array  # its clip


class _EnvStep(NamedTuple):
    state: EnvState
    info: StepInfo
    final_obs: dict
    flags: ResetFlags


@struct.dataclass
class Transition:
    """What a rollout needs from one batched control step."""

    reward: jnp.ndarray  # [N]
    terminated: jnp.ndarray  # [N] failure: no bootstrap
    truncated: jnp.ndarray  # [N] time limit or clip end: bootstrap from final_obs
    final_obs: dict  # observation before the reset (equals the next obs where nothing reset)
    info: StepInfo
    counts: sampling.SamplerCounts  # this step's sampler increments, to be summed across steps and devices


def _start_and_reset_keys(env_key):
    return jax.random.split(jax.random.fold_in(env_key, RESET_SALT))


class BatchedEnv:
    """N environments with domain randomization, auto-reset and the adaptive sampler.

    Every random draw is per environment (start frames and reset noise from that environment's own key),
    so a batch split over devices draws exactly what the same batch draws on one device, and environments
    of different devices (initialized from different keys) draw independently.
    """

    def __init__(self, env: TrackingEnv, num_envs: int, sampler_cfg: sampling.SamplerConfig):
        self.env = env
        self.cfg = env.cfg
        self.num_envs = int(num_envs)
        self.sampler_cfg = sampler_cfg
        self.template = env.make_data(self.num_envs)

    def world(self, lib: MotionLibrary, key) -> World:
        """The model (randomized per environment where the config says so), library and default poses."""
        return make_world(self.env, lib, self.num_envs, key)

    def _fresh(self, m, lib, sampler, data, default_pos, key) -> EnvState:
        k_start, k_reset = _start_and_reset_keys(key)
        start = sampling.sample_start(sampler, self.sampler_cfg, k_start)
        return self.env.reset(m, lib, data, start.motion_id, start.frame, start.bin, default_pos, k_reset)

    def init(self, world: World, sampler: sampling.SamplerState, key) -> BatchState:
        fresh = jax.vmap(self._fresh, in_axes=(world.in_axes, None, None, None, 0, 0))
        env_state = fresh(world.model, world.lib, sampler, self.template, world.default_pos,
                          jax.random.split(key, self.num_envs))
        return BatchState(env=env_state, sampler=sampler)

    def _per_env(self, m, lib, sampler, state: EnvState, action) -> _EnvStep:
        stepped, info = self.env.step(m, lib, state, action)
        failed = info.terminated
        time_out = info.time_out & ~failed
        clip_end = info.clip_end & ~failed
        reset_mask = failed | time_out | clip_end
        fresh = self._fresh(m, lib, sampler, stepped.data, stepped.default_pos, state.rng)
        if self.cfg.on_clip_end == "resample":
            # The public code keeps the episode clock running when the clip ends and the reference jumps.
            keep_clock = clip_end & ~time_out
            fresh = fresh.replace(step=jnp.where(keep_clock, stepped.step, 0))
        flags = ResetFlags(failed=failed, truncated=time_out | clip_end, reset=reset_mask, start_bin=stepped.start_bin,
                           end_frame=stepped.frame, motion_id=stepped.motion_id)
        return _EnvStep(select_state(reset_mask, fresh, stepped), info, stepped.obs, flags)

    def step(self, world: World, bs: BatchState, action) -> tuple[BatchState, Transition]:
        per_env = jax.vmap(self._per_env, in_axes=(world.in_axes, None, None, 0, 0))
        out = per_env(world.model, world.lib, bs.sampler, bs.env, action)
        flags = out.flags
        end_bin = sampling.bin_of_frame(bs.sampler, flags.motion_id, flags.end_frame)
        counts = sampling.sampler_counts(bs.sampler, self.sampler_cfg, flags.start_bin, flags.failed, end_bin,
                                         flags.reset)
        transition = Transition(reward=out.info.reward, terminated=flags.failed, truncated=flags.truncated,
                                final_obs=out.final_obs, info=out.info, counts=counts)
        return bs.replace(env=out.state), transition


def with_sampler_overrides(cfg: sampling.SamplerConfig, overrides: dict) -> sampling.SamplerConfig:
    """Applies a motion set's ``sampler:`` section; unknown keys are an error naming them."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown sampler settings: {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    return dataclasses.replace(cfg, **overrides)
