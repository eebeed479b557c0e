"""Evaluation episodes on MJX: the deterministic policy tracks every clip of a library, no auto-reset.

Modes:

* ``clean``: one episode per clip from frame 0 to the clip's last frame; no observation noise, no domain
  randomization, no pushes, no reset noise (``envs.config.evaluation_config``).
* ``robust``: the training conditions (observation noise, randomization, pushes, reset noise, as in the
  run's config) and ``episodes`` episodes per clip, each from a uniformly drawn start frame to the clip end.

Both use the policy's mean action. All episodes step together in one jitted ``lax.scan`` (one vmapped
function per control step, as MJX-Warp needs); an episode that ended is frozen and masked out.

The motion one-hot: the policy's input has the TRAINING library's size M. A clip whose name is one of the
training clips gets that clip's one-hot; any other clip gets the normalizer's running mean of the one-hot
block, which the normalizer maps to exactly 0: the policy sees the average of the one-hots it was trained
on, never an input outside what it saw (all zeros would be -mean/std, e.g. -100 for a one-clip policy).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.backend import resolve_impl  # the one place the MJX backend is chosen
from mimic_jax.envs import randomize
from mimic_jax.envs.config import EnvConfig, evaluation_config
from mimic_jax.envs.observations import observation_size, term_sizes
from mimic_jax.envs.robot import robot_state
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.evaluation.metrics import Episodes, frame_errors
from mimic_jax.motion.library import MotionLibrary
from mimic_jax.ppo.networks import ACTOR_KEY, NormalizerState, PPONetworks, PPOParams, make_networks

MODES = ("clean", "robust")


class PolicyError(ValueError):
    """Parameters that do not fit the network their config describes; one line."""


@dataclasses.dataclass(frozen=True)
class Policy:
    """A trained actor and what it was trained with (its env config and the training clips' names)."""

    nets: PPONetworks
    params: PPOParams
    normalizer: NormalizerState
    env_cfg: EnvConfig
    motion_names: tuple[str, ...]

    @property
    def num_motions(self) -> int:
        """M, the size of the motion one-hot the policy was trained with."""
        return len(self.motion_names)


def make_policy(config, params: PPOParams, normalizer: NormalizerState, motion_names) -> Policy:
    """A :class:`Policy` from a ``TrainConfig`` and parameters; refuses parameters of another shape."""
    sizes = observation_size(config.env, len(motion_names))
    nets = _networks(sizes["actor"], sizes["critic"], g1.NUM_JOINTS, config.ppo)
    expected = jax.eval_shape(nets.init, jax.random.PRNGKey(0)).policy
    got = jax.tree.map(lambda x: tuple(np.shape(x)), params.policy)
    want = jax.tree.map(lambda x: tuple(x.shape), expected)
    if got != want:
        raise PolicyError(f"actor parameters do not fit the config's network (actor input {sizes['actor']}, "
                          f"hidden {tuple(config.ppo.hidden_sizes)}, {len(motion_names)} motions)")
    mean = np.shape(normalizer.mean[ACTOR_KEY])
    if mean != (sizes["actor"],):
        raise PolicyError(f"observation normalizer has actor size {mean}, the network expects {sizes['actor']}")
    return Policy(nets=nets, params=params, normalizer=normalizer, env_cfg=config.env,
                  motion_names=tuple(motion_names))


@functools.lru_cache(maxsize=8)
def _networks(actor: int, critic: int, action: int, ppo_cfg) -> PPONetworks:
    """One networks object per shape and config, so jitted evaluation programs are reused."""
    return make_networks(actor, critic, action, ppo_cfg)


def policy_from_run(run) -> Policy:
    """The policy of a ``checkpoint.LoadedRun``."""
    return make_policy(run.config, run.params, run.normalizer, run.motion_names)


def one_hot_slice(env_cfg: EnvConfig, num_motions: int) -> tuple[int, int]:
    """(start, stop) of the motion one-hot in the actor observation."""
    start = 0
    for name, size in term_sizes(env_cfg, num_motions)["actor"]:
        if name == "motion_one_hot":
            return start, start + size
        start += size
    raise KeyError("motion_one_hot")


def one_hot_rows(policy: Policy, names) -> tuple[np.ndarray, list[str]]:
    """([len(names), M] one-hot input per evaluated clip, how each was chosen); see the module doc."""
    start, stop = one_hot_slice(policy.env_cfg, policy.num_motions)
    mean = np.asarray(policy.normalizer.mean[ACTOR_KEY], np.float32)[start:stop]
    rows, sources = [], []
    for name in names:
        if name in policy.motion_names:
            rows.append(np.eye(policy.num_motions, dtype=np.float32)[policy.motion_names.index(name)])
            sources.append(f"training clip '{name}'")
        else:
            rows.append(mean)
            sources.append("normalizer mean (clip not in the training set)")
    return np.stack(rows), sources


def act(nets: PPONetworks, block: tuple[int, int], params, normalizer, obs_actor, one_hot):
    """Mean action for actor observations [..., A] with their one-hot block replaced by ``one_hot``."""
    obs_actor = obs_actor.at[..., block[0]:block[1]].set(one_hot)
    return nets.deterministic_action(params, normalizer, {ACTOR_KEY: obs_actor})


def eval_env_config(train_cfg: EnvConfig, mode: str, impl: str = "auto") -> EnvConfig:
    """The environment of an evaluation mode (see the module doc)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    cfg = evaluation_config(train_cfg) if mode == "clean" else train_cfg
    return dataclasses.replace(cfg, impl=resolve_impl(impl))


def plan_episodes(lib: MotionLibrary, mode: str, episodes: int, key) -> tuple[np.ndarray, np.ndarray]:
    """(motion_id, start_frame) per episode: frame 0 once per clip (clean), or random starts (robust)."""
    lengths = np.asarray(lib.clip_length)
    if mode == "clean":
        return np.arange(lib.num_motions, dtype=np.int32), np.zeros(lib.num_motions, np.int32)
    motion_id = np.repeat(np.arange(lib.num_motions, dtype=np.int32), episodes)
    u = np.asarray(jax.random.uniform(key, motion_id.shape))
    start = np.floor(u * (lengths[motion_id] - 1)).astype(np.int32)  # at least one step to play
    return motion_id, start


def _model_and_defaults(env: TrackingEnv, n: int, key):
    """(model, in_axes, default joint positions [n, 29]): randomized per episode where the config says so."""
    cfg = env.cfg
    defaults = jnp.broadcast_to(env.default_pos, (n, env.action_size))
    if not cfg.randomization.enabled:
        return env.mx, jax.tree_util.tree_map(lambda _: None, env.mx), defaults
    k_model, k_off = jax.random.split(key)
    model, in_axes = randomize.randomize_model(env.mx, k_model, n, cfg.randomization,
                                               randomize.foot_geom_ids(env.mj_model), env.torso_id)
    offsets = randomize.default_joint_offsets(k_off, n, cfg.randomization, env.action_size)
    return model, in_axes, defaults + offsets


@functools.lru_cache(maxsize=8)
def _environment(cfg: EnvConfig, num_motions: int) -> TrackingEnv:
    return TrackingEnv(cfg, num_motions)


def _in_axes(env: TrackingEnv):
    """in_axes of the evaluation model: batched where ``_model_and_defaults`` randomizes."""
    return _model_and_defaults(env, 1, jax.random.PRNGKey(0))[1]


@functools.lru_cache(maxsize=8)
def _program(env: TrackingEnv, nets: PPONetworks, block: tuple[int, int], steps: int):
    """The jitted program: ``steps`` control steps of every episode, recording errors and qpos.

    Cached on its static parts, so evaluating another set of the same shapes compiles nothing new.
    """
    def per_env(m, lib, state, action, alive):
        """One control step of one episode (frozen once ended) and its errors at the new instant."""
        new, info = env.step(m, lib, state, action)
        data = new.data.where(~alive, state.data)  # keep an ended episode as it was
        rest = jax.tree_util.tree_map(lambda a, b: jnp.where(alive, a, b), new.replace(data=None),
                                      state.replace(data=None))
        zeros = jnp.zeros((len(env.body_ids), 3))
        errors = frame_errors(robot_state(data, env.body_ids, zeros, zeros), lib.frame(state.motion_id, rest.frame))
        terms = {**info.terminations, "nonfinite": info.nonfinite}
        return rest.replace(data=data), info.terminated, info.clip_end, errors, terms, data.qpos

    vstep = jax.vmap(per_env, in_axes=(_in_axes(env), None, 0, 0, 0))

    def run(params, normalizer, m, lib, state, one_hot):
        """Per-step outputs [steps, N] of all episodes."""
        def body(carry, _):
            state, alive = carry
            action = act(nets, block, params, normalizer, state.obs[ACTOR_KEY], one_hot)
            state, terminated, clip_end, errors, terms, qpos = vstep(m, lib, state, action, alive)
            out = {"valid": alive, "failed": alive & terminated, "errors": errors, "terms": terms, "qpos": qpos}
            return (state, alive & ~(terminated | clip_end)), out

        alive = jnp.ones(state.frame.shape, bool)
        _, out = jax.lax.scan(body, (state, alive), None, length=steps)
        return out

    return jax.jit(run)


@functools.lru_cache(maxsize=8)
def _reset_program(env: TrackingEnv):
    return jax.jit(jax.vmap(env.reset, in_axes=(_in_axes(env), None, None, 0, 0, 0, 0, 0)))


def termination_names(terms: dict, failed: np.ndarray, length: np.ndarray) -> list[str]:
    """Per episode: the first termination (``terms[name]`` [T, N]) that fired at its last step, or ''."""
    out = []
    for n in range(failed.shape[1]):
        fired = [name for name, flags in terms.items() if failed[:, n].any() and flags[length[n] - 1, n]]
        out.append(fired[0] if fired else ("nonfinite" if failed[:, n].any() else ""))
    return out


def mjx_episodes(policy: Policy, lib: MotionLibrary, *, mode: str = "clean", episodes: int = 1, seed: int = 0,
                 impl: str = "auto") -> Episodes:
    """Runs the evaluation episodes of ``mode`` on MJX and returns them (numpy)."""
    cfg = eval_env_config(policy.env_cfg, mode, impl)
    env = _environment(cfg, policy.num_motions)
    k_plan, k_model, k_reset = jax.random.split(jax.random.PRNGKey(seed), 3)
    motion_id, start = plan_episodes(lib, mode, episodes, k_plan)
    n = motion_id.size
    steps = int(np.max(np.asarray(lib.clip_length)[motion_id] - 1 - start))
    model, _, defaults = _model_and_defaults(env, n, k_model)
    rows = jnp.asarray(one_hot_rows(policy, lib.names)[0][motion_id])
    lib_arrays = lib.replace(names=())  # names are static: leave them out so same-shape sets share programs
    state = _reset_program(env)(model, lib_arrays, env.make_data(n), jnp.asarray(motion_id), jnp.asarray(start),
                                jnp.zeros(n, jnp.int32), defaults, jax.random.split(k_reset, n))
    program = _program(env, policy.nets, one_hot_slice(cfg, policy.num_motions), steps)
    out = jax.device_get(program(policy.params, policy.normalizer, model, lib_arrays, state, rows))
    length = np.sum(out["valid"], axis=0).astype(np.int32)
    failed = np.asarray(out["failed"])
    return Episodes(motion_id=motion_id, start_frame=start, length=length, success=~failed.any(axis=0),
                    termination=termination_names(out["terms"], failed, length),
                    errors={k: np.asarray(v, np.float64) for k, v in out["errors"].items()},
                    qpos0=np.asarray(jax.device_get(state.data.qpos)), qpos=np.asarray(out["qpos"]), engine="mjx")
