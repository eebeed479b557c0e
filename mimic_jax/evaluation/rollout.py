"""Evaluation episodes on MJX: the deterministic policy tracks every clip of a library, no auto-reset.

Modes:

* ``clean``: one episode per clip from frame 0 to the clip's last frame; no observation noise, no domain
  randomization, no pushes, no reset noise (``envs.config.evaluation_config``).
* ``robust``: the training conditions (observation noise, randomization, pushes, reset noise, as in the
  run's config) and ``episodes`` episodes per clip, each from a uniformly drawn start frame to the clip end.
* ``noisy``: ``episodes`` episodes per clip from frame 0 with the training's observation noise and pushes,
  no model randomization and no reset noise (what ``experiments/time_to_policy.py`` reports beside clean).

All use the policy's mean action and play through the one episode runner (``envs.episodes.run_episodes``):
all episodes step together in one jitted ``lax.scan``; an episode that ended is frozen and masked out.

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
from mimic_jax.envs.config import EnvConfig, evaluation_config
from mimic_jax.envs.episodes import EpisodeBatch, RecordInput, Start, make_world, run_episodes
from mimic_jax.envs.observations import observation_size, term_sizes
from mimic_jax.envs.robot import RobotState
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.evaluation.metrics import Episodes, frame_errors
from mimic_jax.motion.library import MotionLibrary
from mimic_jax.ppo.networks import ACTOR_KEY, NormalizerState, PPONetworks, PPOParams, make_networks
from mimic_jax.ppo.policy import PPOPolicy

MODES = ("clean", "robust", "noisy")


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

    def runner_policy(self, one_hot=None) -> PPOPolicy:
        """The episode runner's policy: the mean action, the one-hot block replaced by ``one_hot`` [N, M]."""
        block = one_hot_slice(self.env_cfg, self.num_motions)
        return PPOPolicy(params=self.params, normalizer=self.normalizer, nets=self.nets,
                         one_hot=None if one_hot is None else jnp.asarray(one_hot), one_hot_block=block)


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
    policy = PPOPolicy(params=params, normalizer=normalizer, nets=nets, one_hot=one_hot, one_hot_block=block)
    return policy.step((), {ACTOR_KEY: obs_actor}, None)[0]


def eval_env_config(train_cfg: EnvConfig, mode: str, impl: str = "auto") -> EnvConfig:
    """The environment of an evaluation mode (see the module doc)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    cfg = train_cfg if mode == "robust" else evaluation_config(train_cfg)
    if mode == "noisy":
        push = train_cfg.randomization.push
        cfg = dataclasses.replace(cfg, noise=train_cfg.noise,
                                  randomization=dataclasses.replace(cfg.randomization, push=push))
    return dataclasses.replace(cfg, impl=resolve_impl(impl))


def plan_episodes(lib: MotionLibrary, mode: str, episodes: int, key) -> tuple[np.ndarray, np.ndarray]:
    """(motion_id, start_frame) per episode: frame 0 once per clip (clean), ``episodes`` times per clip
    (noisy), or random starts (robust)."""
    lengths = np.asarray(lib.clip_length)
    if mode == "clean":
        return np.arange(lib.num_motions, dtype=np.int32), np.zeros(lib.num_motions, np.int32)
    motion_id = np.repeat(np.arange(lib.num_motions, dtype=np.int32), episodes)
    if mode == "noisy":
        return motion_id, np.zeros(motion_id.size, np.int32)
    u = np.asarray(jax.random.uniform(key, motion_id.shape))
    start = np.floor(u * (lengths[motion_id] - 1)).astype(np.int32)  # at least one step to play
    return motion_id, start


@functools.lru_cache(maxsize=8)
def _environment(cfg: EnvConfig, num_motions: int) -> TrackingEnv:
    return TrackingEnv(cfg, num_motions)


@dataclasses.dataclass(frozen=True)
class TrackingRecorder:
    """Episode-runner recorder: the per-frame errors of ``metrics.frame_errors`` (and the robot's qpos)."""

    body_ids: tuple[int, ...]
    qpos: bool = True

    def __call__(self, step: RecordInput) -> dict:
        data, ids = step.state.data, np.asarray(self.body_ids)
        zeros = jnp.zeros(data.xpos.shape[:1] + (len(ids), 3))
        robot = RobotState(body_pos=data.xpos[:, ids], body_quat=data.xquat[:, ids], body_lin_vel=zeros,
                           body_ang_vel=zeros, joint_pos=data.qpos[:, 7:], joint_vel=data.qvel[:, 6:],
                           root_lin_vel_b=zeros[:, 0], root_ang_vel_b=zeros[:, 0])
        out = {"errors": frame_errors(robot, step.ref)}
        if self.qpos:
            out["qpos"] = data.qpos
        return out


def termination_names(terms: dict, failed: np.ndarray, length: np.ndarray) -> list[str]:
    """Per episode: the first termination (``terms[name]`` [T, N]) that fired at its last step, or ''."""
    out = []
    for n in range(failed.shape[1]):
        fired = [name for name, flags in terms.items() if failed[:, n].any() and flags[length[n] - 1, n]]
        out.append(fired[0] if fired else ("nonfinite" if failed[:, n].any() else ""))
    return out


def mjx_episodes(policy: Policy, lib: MotionLibrary, *, mode: str = "clean", episodes: int = 1, seed: int = 0,
                 impl: str = "auto", qpos: bool = True) -> Episodes:
    """Runs the evaluation episodes of ``mode`` on MJX and returns them (numpy; ``qpos=False``: no qpos
    record, e.g. for periodic evaluations that only need the metrics).

    Another evaluation of the same shapes compiles nothing new: other parameters, clips of the same lengths
    (in robust mode the seed's start frames set the number of steps, hence the program).
    """
    cfg = eval_env_config(policy.env_cfg, mode, impl)
    env = _environment(cfg, policy.num_motions)
    k_plan, k_world, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    motion_id, start = plan_episodes(lib, mode, episodes, k_plan)
    steps = int(np.max(np.asarray(lib.clip_length)[motion_id] - 1 - start))
    world = make_world(env, lib, motion_id.size, k_world)
    runner = policy.runner_policy(one_hot_rows(policy, lib.names)[0][motion_id])
    starts = Start(motion_id=jnp.asarray(motion_id), frame=jnp.asarray(start), bin=jnp.zeros(motion_id.size, jnp.int32))
    recorder = TrackingRecorder(tuple(int(i) for i in env.body_ids), qpos)
    played = jax.device_get(run_episodes(env, world, runner, starts, steps, k_run, recorder))
    return _episodes(played, motion_id, start)


def _episodes(played: EpisodeBatch, motion_id: np.ndarray, start: np.ndarray) -> Episodes:
    failed = np.asarray(played.failed)
    length = np.sum(played.valid, axis=0).astype(np.int32)
    records = played.records
    qpos = np.asarray(records["qpos"]) if "qpos" in records else None
    return Episodes(motion_id=motion_id, start_frame=start, length=length, success=~failed.any(axis=0),
                    termination=termination_names(played.terminations, failed, length),
                    errors={k: np.asarray(v, np.float64) for k, v in records["errors"].items()},
                    qpos0=np.asarray(played.start_qpos), qpos=qpos, engine="mjx")
