"""The PPO trainer: rollout + GAE + SGD epochs as one XLA program per host call.

One device: a single jitted program scans ``iterations_per_call`` iterations of (rollout, sampler update,
PPO update). Several devices: each device steps its own share of the environments in its own jitted
rollout program (dispatched asynchronously; MJX-Warp 3.17 crashed inside pmap/shard_map), then one SPMD
update program (``shard_map``: parameters replicated, batch sharded, gradients averaged, normalizer and
sampler counts summed, sampler updated). The devices may belong to one process or to several
(``jax.distributed``, one process per GPU: see ``mimic_jax.distributed``); each process steps only its own
devices' environments. ``fuse_devices=True`` runs rollout and update in one SPMD program instead, for a
future MJX that supports it (and for the JAX backend today; one process only).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mimic_jax import sampling
from mimic_jax.configs import NonNegativeInt, PositiveInt, check_fields
from mimic_jax.envs.autoreset import BatchedEnv, BatchState
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.motion.library import MotionLibrary
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.networks import make_networks
from mimic_jax.ppo.rollout import rollout, rollout_metrics
from mimic_jax.ppo.update import TrainState, init_train_state, sgd_update

AXIS = "devices"
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
    fuse_devices: bool = False

    def __post_init__(self):
        check_fields(self)


@struct.dataclass
class TrainCarry:
    train_state: TrainState
    envs: tuple  # one BatchState per device
    key: jax.Array


class _Shard(NamedTuple):
    device: Any
    model: Any
    lib: MotionLibrary


class Trainer:
    """Owns the static pieces (env, networks, per-device models); state lives in ``TrainCarry``."""

    def __init__(self, cfg: TrainConfig, lib: MotionLibrary, clip_weights=None, devices=None):
        self.cfg = cfg
        devices = devices or (jax.devices() if jax.process_count() > 1 else jax.local_devices())
        self.devices = devices[: cfg.num_devices or len(devices)]
        # The devices this process drives (all of them unless several processes share the mesh).
        self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
        if not self.local_devices:
            raise ValueError(f"process {jax.process_index()} owns none of the {len(self.devices)} devices")
        if cfg.fuse_devices and len(self.local_devices) < len(self.devices):
            raise ValueError("fuse_devices needs all devices in one process")
        n_dev = len(self.devices)
        if cfg.ppo.num_envs % n_dev:
            raise ValueError(f"num_envs {cfg.ppo.num_envs} is not divisible by {n_dev} devices")
        self.env = TrackingEnv(cfg.env, lib.num_motions)
        self.envs_per_device = cfg.ppo.num_envs // n_dev
        self.benv = BatchedEnv(self.env, self.envs_per_device, cfg.sampler)
        sizes = self.env.observation_size
        self.nets = make_networks(sizes["actor"], sizes["critic"], self.env.action_size, cfg.ppo)
        self.lib = lib
        self.clip_weights = None if clip_weights is None else np.asarray(clip_weights, np.float32)
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        key_model = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1)
        self.shards, self.in_axes = [], None  # one per local device; keys follow the global device index
        self._index = [self.devices.index(d) for d in self.local_devices]
        for i, dev in zip(self._index, self.local_devices):
            model, self.in_axes = self.benv.model(jax.random.fold_in(key_model, i))
            self.shards.append(_Shard(dev, jax.device_put(model, dev), jax.device_put(lib, dev)))
        self._rollout = jax.jit(self._rollout_fn, donate_argnums=(3,))
        self._fused = jax.jit(self._fused_fn, donate_argnums=(0,))
        self._update = self._make_spmd_update()
        self._spmd_fused = self._make_spmd_fused() if len(self.devices) > 1 and cfg.fuse_devices else None
        self._spmd_inputs = None
        if cfg.fuse_devices and cfg.env.impl == "warp" and len(self.devices) > 1:
            raise ValueError("fuse_devices with MJX-Warp: MJX 3.17 crashes inside multi-device SPMD programs")

    # -- state ------------------------------------------------------------------------------------------
    def init(self) -> TrainCarry:
        key = jax.random.PRNGKey(self.cfg.seed)
        k_params, k_env, k_next = jax.random.split(key, 3)
        train_state = init_train_state(self.nets, k_params, self.cfg.ppo)
        sampler = sampling.init_sampler(np.asarray(self.lib.clip_length), self.lib.fps, self.cfg.sampler,
                                        self.clip_weights)
        init = jax.jit(lambda m, lib, s, k: self.benv.init(m, self.in_axes, lib, s, k))
        envs = tuple(init(sh.model, sh.lib, jax.device_put(sampler, sh.device), jax.random.fold_in(k_env, i))
                     for i, sh in zip(self._index, self.shards))
        envs = jax.tree.map(lambda x: _fresh_leaf(x, self.local_devices[0]), envs)
        train_state = jax.tree.map(lambda x: _fresh_leaf(x, self.local_devices[0]), train_state)
        if len(self.devices) > 1:
            train_state = self._replicate(train_state)
        # Donated buffers must be distinct: initial states can alias (e.g. zeros shared by two fields). Leaves
        # must also look like train_step's outputs (strong types, committed), or its second call recompiles.
        return TrainCarry(train_state=train_state, envs=envs, key=_fresh_leaf(k_next, self.local_devices[0]))

    def _replicate(self, tree):
        """Same value on every device of the mesh (each process supplies its own devices' copies)."""
        return self._global_replicated([jax.device_put(tree, d) for d in self.local_devices])

    # -- one device: everything fused -------------------------------------------------------------------
    def _iteration(self, carry: TrainCarry, model, lib, axis_name=None):
        ts, bs = carry.train_state, carry.envs[0]
        key, k_update = jax.random.split(carry.key)
        bs, out, stats, counts = self._rollout_fn(ts.params, ts.normalizer, model, bs, lib)
        if axis_name is not None:
            counts, stats = jax.lax.psum((counts, stats), axis_name)
        sampler = sampling.apply_counts(bs.sampler, self.cfg.sampler, *counts,
                                        num_steps=self.cfg.ppo.unroll_length)
        ts, metrics = sgd_update(self.nets, ts, out, k_update, self.cfg.ppo, axis_name=axis_name)
        metrics.update(rollout_metrics(stats, self.cfg.ppo.num_envs))
        metrics["params_finite"] = _all_finite(ts.params)
        return TrainCarry(train_state=ts, envs=(bs.replace(sampler=sampler),), key=key), metrics

    def _fused_fn(self, carry: TrainCarry, model, lib):
        def body(c, _):
            return self._iteration(c, model, lib)
        carry, metrics = jax.lax.scan(body, carry, None, length=self.cfg.iterations_per_call)
        return carry, jax.tree.map(lambda x: x[-1], metrics)

    # -- several devices: per-device rollouts, one SPMD update ------------------------------------------
    def _rollout_fn(self, params, normalizer, model, bs: BatchState, lib):
        bs, out, stats = rollout(self.nets, self.benv, self.cfg.ppo.unroll_length, params, normalizer, model,
                                 self.in_axes, lib, bs)
        counts = jax.tree.map(lambda x: jnp.sum(x, axis=0), stats.counts)
        return bs, out, stats._replace(counts=()), counts

    def _make_spmd_update(self):
        def update(ts, out, counts, stats, sampler, key):
            # counts/stats arrive with a leading device axis of length 1 per shard: sum over all devices.
            counts, stats = jax.lax.psum(jax.tree.map(lambda x: x[0], (counts, stats)), AXIS)
            sampler = sampling.apply_counts(sampler, self.cfg.sampler, *counts,
                                            num_steps=self.cfg.ppo.unroll_length)
            ts, metrics = sgd_update(self.nets, ts, out, key, self.cfg.ppo, axis_name=AXIS)
            metrics.update(rollout_metrics(stats, self.cfg.ppo.num_envs))
            metrics["params_finite"] = _all_finite(ts.params)
            return ts, sampler, metrics

        batch_spec = P(None, AXIS)
        out_spec = jax.tree.map(lambda _: batch_spec, _rollout_structure())
        out_spec = out_spec._replace(bootstrap_value=P(AXIS))
        fn = _shard_map(update, mesh=self.mesh, in_specs=(P(), out_spec, P(AXIS), P(AXIS), P(), P()),
                        out_specs=(P(), P(), P()))
        return jax.jit(fn, donate_argnums=(0,))

    def _global(self, per_device, axis: int):
        """This process's per-device arrays -> one array over all devices, sharded along ``axis``."""
        def join(*xs):
            shape = list(xs[0].shape)
            shape[axis] *= len(self.devices)
            spec = [None] * len(shape)
            spec[axis] = AXIS
            return jax.make_array_from_single_device_arrays(tuple(shape), NamedSharding(self.mesh, P(*spec)),
                                                            list(xs))
        return jax.tree.map(join, *per_device)

    def _multi_device_iteration(self, carry: TrainCarry):
        ts = carry.train_state
        key, k_update = jax.random.split(carry.key)
        results = []
        for i, sh in enumerate(self.shards):  # asynchronous dispatch: all devices step at once
            local = jax.tree.map(lambda x: _on_device(x, sh.device), (ts.params, ts.normalizer))
            results.append(self._rollout(*local, sh.model, carry.envs[i], sh.lib))
        envs, outs, stats, counts = zip(*results)
        out = self._global([o._replace(bootstrap_value=None) for o in outs], axis=1)
        out = out._replace(bootstrap_value=self._global([o.bootstrap_value for o in outs], axis=0))
        stacked = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
        counts = self._global([stacked(c) for c in counts], axis=0)
        stats = self._global([stacked(s) for s in stats], axis=0)
        sampler = self._global_replicated([e.sampler for e in envs])
        ts, sampler, metrics = self._update(ts, out, counts, stats, sampler, self._replicate(k_update))
        envs = tuple(e.replace(sampler=jax.tree.map(lambda x, d=sh.device: _on_device(x, d), sampler))
                     for e, sh in zip(envs, self.shards))
        metrics = jax.tree.map(lambda x: _on_device(x, self.local_devices[0]), metrics)
        return TrainCarry(train_state=ts, envs=envs, key=key), metrics

    def _global_replicated(self, per_device):
        """This process's per-device copies of one value -> one replicated array over all devices."""
        sharding = NamedSharding(self.mesh, P())
        return jax.tree.map(lambda *xs: jax.make_array_from_single_device_arrays(xs[0].shape, sharding, list(xs)),
                            *per_device)

    # -- several devices, one SPMD program (JAX backend today; MJX-Warp 3.17 crashes in it) --------------
    def _carry_specs(self):
        env_spec = BatchState(env=P(AXIS), sampler=P(), key=P())
        return TrainCarry(train_state=P(), envs=(env_spec,), key=P())

    def _make_spmd_fused(self):
        model_spec = jax.tree.map(lambda a: P() if a is None else P(AXIS), self.in_axes,
                                  is_leaf=lambda x: x is None)

        def iterate(carry, model, lib):
            def body(c, _):
                return self._iteration(c, model, lib, axis_name=AXIS)
            carry, metrics = jax.lax.scan(body, carry, None, length=self.cfg.iterations_per_call)
            return carry, jax.tree.map(lambda x: x[-1], metrics)

        # MJX's solver uses lax.cond on per-device values, which shard_map's replication checker rejects.
        fn = _shard_map(iterate, mesh=self.mesh, in_specs=(self._carry_specs(), model_spec, P()),
                        out_specs=(self._carry_specs(), P()), check_vma=False)
        return jax.jit(fn)

    def to_spmd(self, carry: TrainCarry):
        """Per-device carry -> one carry whose env state is a single array sharded over the devices."""
        envs = carry.envs
        bs = BatchState(env=self._global([e.env for e in envs], axis=0),
                        sampler=jax.device_put(envs[0].sampler, NamedSharding(self.mesh, P())),
                        key=jax.device_put(envs[0].key, NamedSharding(self.mesh, P())))
        model = jax.tree.map(lambda a, *xs: jax.device_put(xs[0], NamedSharding(self.mesh, P())) if a is None
                             else self._global(list(xs), axis=0), self.in_axes, *[sh.model for sh in self.shards],
                             is_leaf=lambda x: x is None)
        lib = jax.device_put(self.lib, NamedSharding(self.mesh, P()))
        key = jax.device_put(carry.key, NamedSharding(self.mesh, P()))
        return TrainCarry(train_state=carry.train_state, envs=(bs,), key=key), model, lib

    # -- the one interface ------------------------------------------------------------------------------
    def train_step(self, carry: TrainCarry):
        """Runs ``iterations_per_call`` iterations; returns (carry, metrics of the last iteration)."""
        if len(self.devices) == 1:
            sh = self.shards[0]
            return self._fused(carry, sh.model, sh.lib)
        if self.cfg.fuse_devices:
            if self._spmd_inputs is None:
                carry, *self._spmd_inputs = self.to_spmd(carry)
            return self._spmd_fused(carry, *self._spmd_inputs)
        metrics = None
        for _ in range(self.cfg.iterations_per_call):
            carry, metrics = self._multi_device_iteration(carry)
        return carry, metrics

    def sampler(self, carry: TrainCarry) -> sampling.SamplerState:
        return carry.envs[0].sampler

    def local_train_state(self, carry: TrainCarry) -> TrainState:
        """The learner state on the first device (parameters are replicated)."""
        if len(self.devices) == 1:
            return carry.train_state
        return jax.tree.map(lambda x: _on_device(x, self.local_devices[0]), carry.train_state)


class PhysicsBufferError(RuntimeError):
    """MJX-Warp ran out of its contact or constraint buffer: results would be silently wrong."""


def check_buffers(metrics, cfg: EnvConfig) -> None:
    """Raises a clear error when any step of the last iteration overflowed the Warp buffers."""
    if float(metrics.get("physics/buffer_overflow_steps", 0.0)) > 0:
        raise PhysicsBufferError(
            f"MJX-Warp contact/constraint buffer overflow (contacts_per_env={cfg.contacts_per_env}, "
            f"constraints_per_env={cfg.constraints_per_env}); raise them with "
            "--set env.contacts_per_env=N --set env.constraints_per_env=N")


def _fresh_leaf(x, device) -> jax.Array:
    """A distinct, strongly typed, committed copy of ``x`` (a weak type or an uncommitted array changes the
    signature of the jitted step: the log-std init and the normalizer's ``std_eps`` are weak)."""
    x = jnp.array(x, dtype=jnp.result_type(x), copy=True)
    return x if isinstance(x, jax.core.Tracer) or x.committed else jax.device_put(x, device)


def _on_device(x, device):
    """The copy of a replicated array that lives on ``device``."""
    for shard in x.addressable_shards:
        if shard.device == device:
            return shard.data
    return jax.device_put(x, device)


def _all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _rollout_structure():
    from mimic_jax.ppo.update import Rollout

    return Rollout(*([0] * len(Rollout._fields)))
