"""The PPO trainer: rollout + GAE + SGD epochs as one XLA program per host call.

One device: a single jitted program scans ``iterations_per_call`` iterations of (rollout, learner step).
Several devices: each device steps its own share of the environments in its own jitted rollout program
(dispatched asynchronously; MJX-Warp 3.17 crashed inside pmap/shard_map), then one SPMD update program
(``shard_map``) runs the same learner step with a device axis: parameters replicated, batch sharded,
gradients averaged, normalizer, statistics and sampler counts summed. The devices may belong to one
process or to several (``jax.distributed``, one process per GPU: see ``mimic_jax.distributed``); each
process steps only its own devices' environments. Where arrays live is ``ppo.placement``'s business.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import struct
from jax.sharding import PartitionSpec as P

from mimic_jax import sampling
from mimic_jax.configs import NonNegativeInt, PositiveInt, check_fields
from mimic_jax.envs.autoreset import BatchedEnv, BatchState
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.episodes import World
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.motion.library import MotionLibrary
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.learner import learner_step
from mimic_jax.ppo.networks import make_networks
from mimic_jax.ppo.placement import AXIS, Placement, fresh
from mimic_jax.ppo.rollout import RolloutResult, rollout
from mimic_jax.ppo.update import Rollout, TrainState, init_train_state

_shard_map = getattr(jax, "shard_map", None)
if _shard_map is None:  # older JAX
    from jax.experimental.shard_map import shard_map as _shard_map


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    env: EnvConfig = EnvConfig()
    ppo: PPOConfig = PPOConfig()
    sampler: sampling.SamplerConfig = sampling.SamplerConfig()
    seed: int = 0
    iterations_per_call: PositiveInt = 1
    num_devices: NonNegativeInt = 1  # 0: all local devices

    def __post_init__(self):
        check_fields(self)


@struct.dataclass
class TrainCarry:
    train_state: TrainState
    envs: tuple  # one BatchState per local device
    key: jax.Array


class Shard(NamedTuple):
    """A local device and the world (model, library, default poses) of its environments."""

    device: Any
    world: World


class Trainer:
    """Owns the static pieces (env, networks, per-device worlds); state lives in ``TrainCarry``."""

    def __init__(self, cfg: TrainConfig, lib: MotionLibrary, clip_weights=None, devices=None):
        self.cfg = cfg
        self.placement = Placement(cfg.num_devices, devices)
        self.devices, self.local_devices = self.placement.devices, self.placement.local_devices
        if cfg.ppo.num_envs % len(self.devices):
            raise ValueError(f"num_envs {cfg.ppo.num_envs} is not divisible by {len(self.devices)} devices")
        self.env = TrackingEnv(cfg.env, lib.num_motions)
        self.envs_per_device = cfg.ppo.num_envs // len(self.devices)
        self.benv = BatchedEnv(self.env, self.envs_per_device, cfg.sampler)
        sizes = self.env.observation_size
        self.nets = make_networks(sizes["actor"], sizes["critic"], self.env.action_size, cfg.ppo)
        self.lib = lib
        self.clip_weights = None if clip_weights is None else np.asarray(clip_weights, np.float32)
        key_model = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)
        # One world per local device; keys follow the global device index, so each device's environments
        # get their own randomization whichever process drives them.
        self.shards = [Shard(dev, jax.device_put(self.benv.world(lib, jax.random.fold_in(key_model, i)), dev))
                       for i, dev in zip(self.placement.index, self.local_devices)]
        self._learner = dict(nets=self.nets, ppo=cfg.ppo, sampler_cfg=cfg.sampler)
        self._rollout = jax.jit(self._rollout_fn, donate_argnums=(3,))
        self._fused = jax.jit(self._fused_fn, donate_argnums=(0,))
        self._update = self._make_spmd_update()

    # -- state ------------------------------------------------------------------------------------------
    def init(self) -> TrainCarry:
        key = jax.random.PRNGKey(self.cfg.seed)
        k_params, k_env, k_next = jax.random.split(key, 3)
        train_state = init_train_state(self.nets, k_params, self.cfg.ppo)
        sampler = sampling.init_sampler(np.asarray(self.lib.clip_length), self.lib.fps, self.cfg.sampler,
                                        self.clip_weights)
        init = jax.jit(self.benv.init)
        envs = tuple(init(sh.world, jax.device_put(sampler, sh.device), jax.random.fold_in(k_env, i))
                     for i, sh in zip(self.placement.index, self.shards))
        # Leaves must look like train_step's outputs (distinct, strong types, committed), or its second call
        # recompiles.
        envs = jax.tree.map(lambda x: fresh(x, self.placement.first), envs)
        return TrainCarry(train_state=self.placement.put_learner(train_state), envs=envs,
                          key=fresh(k_next, self.placement.first))

    # -- one device: everything fused -------------------------------------------------------------------
    def _rollout_fn(self, params, normalizer, world: World, bs: BatchState) -> RolloutResult:
        return rollout(self.nets, self.benv, self.cfg.ppo.unroll_length, params, normalizer, world, bs)

    def _iteration(self, carry: TrainCarry, world: World):
        ts = carry.train_state
        key, k_update = jax.random.split(carry.key)
        res = self._rollout_fn(ts.params, ts.normalizer, world, carry.envs[0])
        out = learner_step(ts, res.state.sampler, res.rollout, res.stats, res.counts, k_update, **self._learner)
        envs = (res.state.replace(sampler=out.sampler),)
        return TrainCarry(train_state=out.train_state, envs=envs, key=key), out.metrics

    def _fused_fn(self, carry: TrainCarry, world: World):
        def body(c, _):
            return self._iteration(c, world)
        carry, metrics = jax.lax.scan(body, carry, None, length=self.cfg.iterations_per_call)
        return carry, jax.tree.map(lambda x: x[-1], metrics)

    # -- several devices: per-device rollouts, one SPMD update ------------------------------------------
    def _make_spmd_update(self):
        def update(ts, batch, stats, counts, sampler, key):
            # stats/counts arrive with a leading device axis of length 1 per shard.
            stats, counts = jax.tree.map(lambda x: x[0], (stats, counts))
            out = learner_step(ts, sampler, batch, stats, counts, key, axis_name=AXIS, **self._learner)
            return out.train_state, out.sampler, out.metrics

        batch_spec = Rollout(*([P(None, AXIS)] * (len(Rollout._fields) - 1)), bootstrap_value=P(AXIS))
        fn = _shard_map(update, mesh=self.placement.mesh, in_specs=(P(), batch_spec, P(AXIS), P(AXIS), P(), P()),
                        out_specs=(P(), P(), P()))
        return jax.jit(fn, donate_argnums=(0,))

    def _multi_device_iteration(self, carry: TrainCarry):
        place, ts = self.placement, carry.train_state
        key, k_update = jax.random.split(carry.key)
        results = []
        for i, sh in enumerate(self.shards):  # asynchronous dispatch: all devices step at once
            local = place.local((ts.params, ts.normalizer), sh.device)
            results.append(self._rollout(*local, sh.world, carry.envs[i]))
        batch = place.sharded([r.rollout._replace(bootstrap_value=None) for r in results], axis=1)
        batch = batch._replace(bootstrap_value=place.sharded([r.rollout.bootstrap_value for r in results], axis=0))
        stacked = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
        stats = place.sharded([stacked(r.stats) for r in results], axis=0)
        counts = place.sharded([stacked(r.counts) for r in results], axis=0)
        sampler = place.replicated([r.state.sampler for r in results])
        ts, sampler, metrics = self._update(ts, batch, stats, counts, sampler, place.replicate(k_update))
        envs = tuple(r.state.replace(sampler=place.local(sampler, sh.device)) for r, sh in zip(results, self.shards))
        return TrainCarry(train_state=ts, envs=envs, key=key), place.local(metrics)

    # -- the one interface ------------------------------------------------------------------------------
    def train_step(self, carry: TrainCarry):
        """Runs ``iterations_per_call`` iterations; returns (carry, metrics of the last iteration)."""
        if not self.placement.multi:
            return self._fused(carry, self.shards[0].world)
        metrics = None
        for _ in range(self.cfg.iterations_per_call):
            carry, metrics = self._multi_device_iteration(carry)
        return carry, metrics

    def sampler(self, carry: TrainCarry) -> sampling.SamplerState:
        return carry.envs[0].sampler

    def local_train_state(self, carry: TrainCarry) -> TrainState:
        """The learner state on the first local device (parameters are replicated)."""
        return self.placement.local(carry.train_state) if self.placement.multi else carry.train_state

    def abstract_carry(self) -> TrainCarry:
        """Shapes, dtypes and device placement of the carry ``init`` makes, without running anything."""
        return self.placement.abstract_carry(jax.eval_shape(self.init))

    def abstract_saved_carry(self) -> TrainCarry:
        """The same in the layout a checkpoint stores (``Placement.saved``: differs with several processes)."""
        return self.placement.abstract_saved(self.abstract_carry())


class PhysicsBufferError(RuntimeError):
    """MJX-Warp ran out of its contact or constraint buffer: results would be silently wrong."""


def check_buffers(metrics, cfg: EnvConfig) -> None:
    """Raises a clear error when any step of the last iteration overflowed the Warp buffers."""
    if float(metrics.get("physics/buffer_overflow_steps", 0.0)) > 0:
        raise PhysicsBufferError(
            f"MJX-Warp contact/constraint buffer overflow (contacts_per_env={cfg.contacts_per_env}, "
            f"constraints_per_env={cfg.constraints_per_env}); raise them with "
            "--set env.contacts_per_env=N --set env.constraints_per_env=N")
