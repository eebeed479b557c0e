"""The one episode runner: an environment, its world, a policy and a recorder, as one jitted XLA program.

    world = make_world(env, lib, n, key)                     # model (randomized or not), library, defaults
    played = run_episodes(env, world, policy, start, steps, key, record)

Evaluation, time-to-policy, demonstration-data collection and the guided controller all play episodes
through :func:`run_episodes`; training keeps its own auto-reset loop (``ppo/rollout.py``) but builds its
world with :func:`make_world`, merges states with :func:`select_state` and draws its policy keys with
:func:`policy_keys`, so both loops see the same model, offsets and random streams.

A :class:`Policy` is a pytree (a ``flax.struct`` dataclass: parameters are leaves, networks static), so
the jitted runner compiles once per policy *structure* and is re-used with new parameters. It maps the
env's observation dict to actions and carries its own state (``()`` when it has none); wrappers (action
noise, delay) hold an inner policy and nest its carry in theirs.

Options for policies that are not trackers (the guided controller, ``control/simulate.py``), all off by
default: ``observe(state, ref) -> dict`` adds entries to the observation dict the policy sees (the robot's
world state, the control step); ``kicks`` [T, N, 3] adds scripted planar root-velocity changes (world frame)
before the physics of each control step; ``end_on_failure=False`` keeps an episode running through
terminations and past its clip end (only non-finite physics then ends it; both are still reported).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from mimic_jax.envs import randomize as domain
from mimic_jax.envs.tracking import EnvState, StepInfo, TrackingEnv
from mimic_jax.motion.library import MotionLibrary, RefFrame
from mimic_jax.sampling import Start

__all__ = ["EpisodeBatch", "ModelAxes", "Policy", "RecordInput", "Start", "World", "make_world", "policy_keys",
           "randomized_model", "run_episodes", "select_state"]

POLICY_KEY_SALT = 0x5EED  # policy keys are fold_in(env rng, salt): per environment, independent of the env's


@dataclasses.dataclass(frozen=True)
class ModelAxes:
    """``vmap`` in_axes of a model (0 where batched per environment, None where shared), hashable so that
    it can be a static part of jitted programs (an mjx.Model of Nones is not)."""

    treedef: Any
    leaves: tuple

    @classmethod
    def of(cls, in_axes) -> ModelAxes:
        leaves, treedef = jax.tree_util.tree_flatten(in_axes, is_leaf=lambda x: x is None)
        return cls(treedef, tuple(leaves))

    @property
    def tree(self):
        return jax.tree_util.tree_unflatten(self.treedef, self.leaves)


@struct.dataclass
class World:
    """What N environments run in: the model (batched leaves where randomized), the motion library and
    each environment's default joint positions (randomized offsets included)."""

    model: Any
    lib: MotionLibrary
    default_pos: jax.Array  # [N, 29]
    axes: ModelAxes = struct.field(pytree_node=False)

    @property
    def in_axes(self):
        """The model's ``vmap`` in_axes pytree."""
        return self.axes.tree


def randomized_model(env: TrackingEnv, key, num_envs: int):
    """(model, in_axes) with the domain randomization of ``env.cfg`` (foot friction, torso centre of mass, and
    the model-mismatch options where they are on)."""
    return domain.randomize_model(env.mx, key, num_envs, env.cfg.randomization, domain.foot_geom_ids(env.mj_model),
                                  env.torso_id, index=domain.model_index(env))


def make_world(env: TrackingEnv, lib: MotionLibrary, num_envs: int, key, *, randomize: bool | None = None,
               model_fn: Callable | None = None) -> World:
    """THE place that builds the batched model and default joint positions of ``num_envs`` environments.

    ``randomize`` (default: ``env.cfg.randomization.enabled``) draws the model randomization and the default
    joint offsets. ``model_fn(mx, key, n) -> (model, in_axes)`` replaces the model builder (default
    :func:`randomized_model` when randomizing, the shared model otherwise); a caller adding perturbations
    on top of the randomization calls :func:`randomized_model` inside it. The library's names (static) are
    dropped so that sets of the same shapes share compiled programs.
    """
    randomize = env.cfg.randomization.enabled if randomize is None else randomize
    k_model, k_offsets = jax.random.split(key)
    if model_fn is None:
        model_fn = (lambda mx, k, n: randomized_model(env, k, n)) if randomize else _shared_model
    model, in_axes = model_fn(env.mx, k_model, num_envs)
    default_pos = jnp.broadcast_to(env.default_pos, (num_envs, env.action_size))
    if randomize:
        default_pos = default_pos + domain.default_joint_offsets(k_offsets, num_envs, env.cfg.randomization,
                                                                 env.action_size)
    return World(model=model, lib=lib.replace(names=()), default_pos=default_pos, axes=ModelAxes.of(in_axes))


def _shared_model(mx, key, num_envs: int):
    del key, num_envs
    return mx, jax.tree_util.tree_map(lambda _: None, mx)


def select_state(mask, on_true: EnvState, on_false: EnvState) -> EnvState:
    """``on_true`` where ``mask`` else ``on_false``, for one environment (inside vmap: ``mask`` is a scalar)."""
    data = on_false.data.where(mask, on_true.data)
    rest = jax.tree_util.tree_map(lambda a, b: jnp.where(mask, a, b), on_true.replace(data=None),
                                  on_false.replace(data=None))
    return rest.replace(data=data)


def policy_keys(env_rng: jax.Array) -> jax.Array:
    """[N] per-environment policy keys from the environments' own random keys [N, 2]."""
    return jax.vmap(lambda k: jax.random.fold_in(k, POLICY_KEY_SALT))(env_rng)


class Policy(Protocol):
    """Anything that maps observations to actions with its own state; must be a pytree (see the module doc)."""

    def init(self, num_envs: int, key) -> Any:
        """The policy carry of ``num_envs`` episodes (a pytree; ``()`` when there is none)."""

    def step(self, carry, obs: dict[str, jax.Array], key) -> tuple[jax.Array, Any]:
        """(actions [N, 29], new carry) for the env's observation dict; ``key`` holds one key per episode."""


class RecordInput(NamedTuple):
    """What a recorder sees at each control step (batched over the N episodes)."""

    obs: dict  # observations before acting (with the ``observe`` hook's entries)
    action: jax.Array  # [N, 29] the action executed
    policy_carry: Any  # the policy carry after the step
    state: EnvState  # env state after the step (as it was for episodes that had already ended)
    info: StepInfo  # the step's rewards, terminations and flags
    ref: RefFrame  # the reference at the state's frame (the new instant)
    valid: jax.Array  # [N] bool: the episode was alive before this step


class EpisodeBatch(NamedTuple):
    """Device arrays of N episodes played for T control steps."""

    valid: jax.Array  # [T, N] the step belongs to the episode
    failed: jax.Array  # [T, N] the episode terminated at this step
    terminations: dict  # name -> [T, N] bool, each named termination and "nonfinite", as the env reported
    records: Any  # the recorder's outputs stacked [T, N, ...] (None without a recorder)
    start_qpos: jax.Array  # [N, nq] the robot at the start

    @property
    def length(self) -> jax.Array:
        """[N] control steps each episode played."""
        return jnp.sum(self.valid, axis=0).astype(jnp.int32)

    @property
    def success(self) -> jax.Array:
        """[N] the episode ended without a termination (at its clip end or at the last step)."""
        return ~jnp.any(self.failed, axis=0)


class _Carry(NamedTuple):
    state: EnvState
    policy: Any
    alive: jax.Array


class _StepOut(NamedTuple):
    valid: jax.Array
    failed: jax.Array
    terminations: dict
    records: Any


def run_episodes(env: TrackingEnv, world: World, policy: Policy, start: Start, steps: int, key,
                 record: Callable[[RecordInput], Any] | None = None, *,
                 observe: Callable[[EnvState, RefFrame], dict] | None = None, kicks: jax.Array | None = None,
                 end_on_failure: bool = True) -> EpisodeBatch:
    """Resets every episode at ``start`` and plays ``steps`` control steps in one ``lax.scan``.

    One vmapped per-env function per step (physics, rewards, terminations), as MJX-Warp needs. An episode
    that terminated or reached its clip end is frozen (its state kept as it was) and masked out (``valid``
    False) from then on; the time limit of training does not apply. ``record(RecordInput) -> pytree`` runs
    inside the scan and must be hashable (a module-level function or a frozen dataclass): the program is
    cached on (env, steps, record) and jit re-uses it for every world, policy and start of the same
    structure and shapes. ``observe``, ``kicks`` and ``end_on_failure``: see the module doc (``observe`` is
    hashable like ``record``, batched: it sees the [N] states and references).
    """
    template = _template(env, int(start.frame.shape[0]))
    options = () if observe is None and end_on_failure else (observe, bool(end_on_failure))
    return _program(env, int(steps), record, *options)(world, policy, start, key, template, kicks)


@functools.lru_cache(maxsize=8)
def _template(env: TrackingEnv, num_envs: int):
    return env.make_data(num_envs)


def _kick(state: EnvState, kick) -> EnvState:
    """One env's root linear velocity changed by ``kick`` [3] (world frame; MuJoCo's free joint)."""
    return state.replace(data=state.data.replace(qvel=state.data.qvel.at[0:3].add(kick)))


@functools.lru_cache(maxsize=16)
def _program(env: TrackingEnv, steps: int, record, observe=None, end_on_failure: bool = True):
    def per_env(m, lib, state: EnvState, action, alive, kick):
        new, info = env.step(m, lib, state if kick is None else _kick(state, kick), action)
        return select_state(alive, new, state), info

    def run(world: World, policy, start: Start, key, template, kicks) -> EpisodeBatch:
        n = start.frame.shape[0]
        k_reset, k_policy = jax.random.split(key)
        reset = jax.vmap(env.reset, in_axes=(world.in_axes, None, None, 0, 0, 0, 0, 0))
        first = reset(world.model, world.lib, template, start.motion_id, start.frame, start.bin, world.default_pos,
                      jax.random.split(k_reset, n))
        step = jax.vmap(per_env, in_axes=(world.in_axes, None, 0, 0, 0, None if kicks is None else 0))

        def body(c: _Carry, kick):
            obs = c.state.obs
            if observe is not None:
                obs = {**obs, **observe(c.state, world.lib.frame(c.state.motion_id, c.state.frame))}
            action, policy_carry = policy.step(c.policy, obs, policy_keys(c.state.rng))
            state, info = step(world.model, world.lib, c.state, action, c.alive, kick)
            records = None
            if record is not None:
                ref = world.lib.frame(state.motion_id, state.frame)
                records = record(RecordInput(obs=obs, action=action, policy_carry=policy_carry, state=state,
                                             info=info, ref=ref, valid=c.alive))
            out = _StepOut(valid=c.alive, failed=c.alive & info.terminated,
                           terminations={**info.terminations, "nonfinite": info.nonfinite}, records=records)
            ended = (info.terminated | info.clip_end) if end_on_failure else info.nonfinite
            return _Carry(state, policy_carry, c.alive & ~ended), out

        init = _Carry(first, policy.init(n, k_policy), jnp.ones(n, bool))
        _, out = jax.lax.scan(body, init, kicks, length=steps)
        return EpisodeBatch(valid=out.valid, failed=out.failed, terminations=out.terminations, records=out.records,
                            start_qpos=first.data.qpos)

    return jax.jit(run)
