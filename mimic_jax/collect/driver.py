"""The collection driver: teacher episodes on the one episode runner, chunk by chunk, into a dataset.

A chunk is one call of ``envs.episodes.run_episodes`` on ``num_envs`` environments (a fresh domain
randomization per chunk, the teacher's training conditions: observation noise, randomization, pushes), each
running one episode of ``run_steps`` control steps from a planned start (``windows.plan_starts``). The
policy is the teacher wrapped in OU noise (``noise.OUNoisePolicy``, which keeps the clean label) and action
delay (``delay.DelayedPolicy``). One jitted program runs the chunk and cuts its windows on the device: world
states, executed actions, labels, the teacher's observations and both state representations (global dims in
the window's first-step frame). Only the kept windows leave the device (with their mirror copies, made there
by a small separate program when asked for); the host writes them (``shards.DatasetWriter``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from mimic_jax import states
from mimic_jax.checkpoint import config_to_dict
from mimic_jax.collect import mirror, schema, windows
from mimic_jax.collect.config import CollectConfig, CollectionError
from mimic_jax.collect.delay import DelayedPolicy, random_delays
from mimic_jax.collect.noise import OUConfig, OUNoisePolicy, random_seeds
from mimic_jax.collect.shards import DatasetWriter
from mimic_jax.collect.teacher import Teacher
from mimic_jax.envs import episodes as runner
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.robot import body_velocities
from mimic_jax.envs.tracking import TrackingEnv
from mimic_jax.evaluation.rollout import resolve_impl


class StepRecord(NamedTuple):
    """What the collector keeps of each control step of the runner ([N, ...] per step)."""

    world: states.WorldStates  # after the step's physics
    frame: jnp.ndarray  # reference frame of that instant
    action: jnp.ndarray  # executed at this step
    label: jnp.ndarray  # the teacher's clean action at this step
    obs: jnp.ndarray  # the teacher's actor observation at this step


class ChunkOut(NamedTuple):
    rows: dict  # per-step schema fields [N, T, ...] and teacher_obs
    outcome: windows.Outcome


def world_state(body_ids: np.ndarray, data) -> states.WorldStates:
    """One environment's world-frame state, velocities as the environment measures them (MuJoCo's cvel of the
    last physics substep, at the body origins)."""
    lin, ang = body_velocities(data, body_ids)
    return states.WorldStates(body_pos_w=data.xpos[body_ids], body_quat_w=data.xquat[body_ids], body_lin_vel_w=lin,
                              body_ang_vel_w=ang, joint_pos=data.qpos[7:], joint_vel=data.qvel[6:])


@dataclasses.dataclass(frozen=True)
class Recorder:
    """The runner's record hook (hashable, so the runner's program is cached): world state, frame, executed
    action, the label from the noise wrapper's carry (inside the delay wrapper's) and the actor observation."""

    body_ids: tuple[int, ...]

    def __call__(self, inp: runner.RecordInput) -> StepRecord:
        world = jax.vmap(functools.partial(world_state, np.asarray(self.body_ids)))(inp.state.data)
        return StepRecord(world=world, frame=inp.state.frame, action=inp.action,
                          label=inp.policy_carry.inner.label, obs=inp.obs["actor"])


def _encode(ws: states.WorldStates) -> dict:
    """Both representations of windows [N, T, ...], global dims in each window's first-step frame."""
    frame = states.character_frame(ws.body_pos_w[:, 0, states.ROOT], ws.body_quat_w[:, 0, states.ROOT])
    return {"state_body_pos": states.encode(states.BODY_POS, ws, frame),
            "state_joint_pos": states.encode(states.JOINT_POS, ws, frame)}


def window_rows(at_state: StepRecord, at_action: StepRecord) -> dict:
    """Per-step fields of windows from the records holding their states and their actions ([N, T, ...])."""
    ws = at_state.world
    return {**ws._asdict(), **_encode(ws), "frame": at_state.frame, "action": at_action.action,
            "label": at_action.label, schema.TEACHER_OBS: at_action.obs}


@jax.jit
def mirror_rows(rows: dict) -> dict:
    """The mirror copies' per-step fields (states re-encoded in the mirrored first-step frames), on the device."""
    ws = mirror.mirror_world_states(states.WorldStates(*(rows[f] for f in schema.WORLD_FIELDS)))
    return {**ws._asdict(), **_encode(ws), "frame": rows["frame"], "action": mirror.mirror_joints(rows["action"]),
            "label": mirror.mirror_joints(rows["label"])}


@functools.lru_cache(maxsize=4)
def chunk_program(env: TrackingEnv, window_steps: int, run_steps: int, max_delay: int, noise: OUConfig):
    """The jitted chunk: (world, teacher policy, starts, seeds, delays, key) -> :class:`ChunkOut`."""
    record = Recorder(body_ids=tuple(int(i) for i in env.body_ids))

    def run(world, teacher, start, seeds, delays, key):
        policy = DelayedPolicy(inner=OUNoisePolicy(inner=teacher, seed=seeds, cfg=noise), delay=delays,
                               max_delay=max_delay)
        result = runner.run_episodes(env, world, policy, start, run_steps, key, record=record)
        rows = window_rows(windows.cut(result.records, windows.state_steps(window_steps)),
                           windows.cut(result.records, windows.action_steps(window_steps)))
        return ChunkOut(rows=rows, outcome=windows.outcomes(result.valid, result.failed, window_steps))

    return jax.jit(run)


@functools.lru_cache(maxsize=4)
def collection_env(cfg: EnvConfig, num_motions: int) -> TrackingEnv:
    """One environment object per config, so that a second collection reuses the compiled chunk program."""
    return TrackingEnv(cfg, num_motions)


def env_config(teacher: Teacher, impl: str) -> EnvConfig:
    """The teacher's training environment (observation noise, randomization, pushes) on ``impl``."""
    return dataclasses.replace(teacher.policy.env_cfg, impl=resolve_impl(impl))


class Tally:
    """Counts over the collection, for the card."""

    def __init__(self, num_clips: int, max_delay: int):
        self.clip = {k: np.zeros(num_clips, np.int64) for k in ("episodes", "accepted", "windows")}
        self.delay = {k: np.zeros(max_delay + 1, np.int64) for k in ("episodes", "accepted")}
        self.episodes = {k: 0 for k in ("run", "accepted", "fell", "short", "not_kept")}
        self.kept = 0
        self.chunks = 0

    def add(self, motion_id, delay, outcome: windows.Outcome, kept: np.ndarray, copies: int) -> None:
        accepted, fell = np.asarray(outcome.accepted), np.asarray(outcome.fell)
        np.add.at(self.clip["episodes"], motion_id, 1)
        np.add.at(self.clip["accepted"], motion_id, accepted.astype(np.int64))
        np.add.at(self.clip["windows"], motion_id, copies * kept.astype(np.int64))
        np.add.at(self.delay["episodes"], delay, 1)
        np.add.at(self.delay["accepted"], delay, accepted.astype(np.int64))
        self.episodes["run"] += len(accepted)
        self.episodes["accepted"] += int(accepted.sum())
        self.episodes["fell"] += int(fell.sum())
        self.episodes["short"] += int((~accepted & ~fell).sum())
        self.episodes["not_kept"] += int((accepted & ~kept).sum())
        self.kept += int(kept.sum())
        self.chunks += 1


@dataclasses.dataclass(frozen=True)
class Plan:
    """The sizes of a collection."""

    env: TrackingEnv
    window_steps: int
    run_steps: int
    target: int  # windows from distinct episodes (mirror copies not counted)
    copies: int  # 2 with mirror copies
    max_episodes: int
    fields: dict


def make_plan(teacher: Teacher, cfg: CollectConfig, impl: str = "auto") -> Plan:
    env = collection_env(env_config(teacher, impl), teacher.lib.num_motions)
    window_steps, run_steps = cfg.windows.steps(env.cfg.control_dt)
    target = math.ceil(cfg.frames / window_steps)
    obs_size = env.observation_size["actor"] if cfg.teacher_obs else None
    return Plan(env=env, window_steps=window_steps, run_steps=run_steps, target=target,
                copies=2 if cfg.mirror else 1, max_episodes=math.ceil(target * cfg.max_episodes_factor),
                fields=schema.fields(obs_size))


def teacher_policy(teacher: Teacher):
    """The teacher's deterministic actor as the runner's Policy (its own clips: the one-hot as trained)."""
    return teacher.policy.runner_policy()


def kept_rows(out: ChunkOut, kept: np.ndarray, per_window: dict, plan: Plan) -> dict:
    """Every schema field of the kept windows (then their mirror copies), host arrays; only the kept windows
    leave the device."""
    idx = np.nonzero(kept)[0]
    names = [name for name, f in plan.fields.items() if f.per_step]
    on_device = {name: out.rows[name][idx] for name in names}
    windows_of = {k: v[idx] for k, v in per_window.items()}
    rows = {**jax.device_get(on_device), **windows_of, "mirrored": np.zeros(idx.size, bool)}
    if plan.copies == 1:
        return rows
    copies = {**jax.device_get(mirror_rows(on_device)), **windows_of, "mirrored": np.ones(idx.size, bool)}
    return {name: np.concatenate([np.asarray(rows[name]), np.asarray(copies[name])]) for name in rows}


def run_chunk(program, plan: Plan, policy, teacher: Teacher, cfg: CollectConfig, state) -> None:
    """One chunk: plan starts, run, keep up to the target, write windows and episode rows."""
    writer, tally, rng, key = state
    n, first = cfg.num_envs, tally.episodes["run"]
    episode = np.arange(first, first + n, dtype=np.int32)
    starts = windows.plan_starts(np.asarray(teacher.lib.clip_length), episode, plan.run_steps, rng)
    k_world, k_seed, k_delay, k_run = jax.random.split(jax.random.fold_in(key, tally.chunks), 4)
    seeds = np.asarray(random_seeds(k_seed, n))
    delays = np.asarray(random_delays(k_delay, n, cfg.max_delay))
    world = runner.make_world(plan.env, teacher.lib, n, k_world)
    start = runner.Start(motion_id=jnp.asarray(starts.motion_id), frame=jnp.asarray(starts.frame),
                         bin=jnp.zeros(n, jnp.int32))
    out = program(world, policy, start, jnp.asarray(seeds), jnp.asarray(delays), k_run)
    outcome = windows.Outcome(*(np.asarray(x) for x in jax.device_get(out.outcome)))
    kept = windows.keep_first(outcome.accepted, plan.target - tally.kept)
    per_window = {"motion_id": starts.motion_id, "episode": episode,
                  "window_start": np.full(n, windows.WINDOW_START, np.int32), "delay": delays.astype(np.int8),
                  "noise_seed": seeds}
    writer.append(kept_rows(out, kept, per_window, plan))
    writer.add_episodes({"motion_id": starts.motion_id, "start_frame": starts.frame, "delay": delays,
                         "noise_seed": seeds, "steps": outcome.steps, "fell": outcome.fell,
                         "fall_step": outcome.fall_step, "accepted": outcome.accepted, "kept": kept})
    tally.add(starts.motion_id, delays, outcome, kept, plan.copies)


def _give_up(tally: Tally, plan: Plan) -> str:
    e = tally.episodes
    return (f"only {tally.kept} of {plan.target} windows after {e['run']} episodes ({e['accepted']} accepted, "
            f"{e['fell']} fell before {plan.run_steps} steps, {e['short']} too short): the teacher does not track "
            f"these clips under this noise and delay; nothing written")


def collect(teacher: Teacher, cfg: CollectConfig, out, *, impl: str = "auto", replace: bool = False,
            progress: bool = True, command: str = "") -> Path:
    """Runs the collection and writes the dataset at ``out`` (atomically); returns its path."""
    cfg.check()
    plan = make_plan(teacher, cfg, impl)
    program = chunk_program(plan.env, plan.window_steps, plan.run_steps, cfg.max_delay, cfg.noise)
    policy, tally = teacher_policy(teacher), Tally(teacher.lib.num_motions, cfg.max_delay)
    rng, key = np.random.default_rng(cfg.seed), jax.random.PRNGKey(cfg.seed)
    t0 = time.monotonic()
    with DatasetWriter(Path(out), plan.fields, plan.target * plan.copies, plan.window_steps,
                       replace=replace) as writer, \
            tqdm(total=plan.target * plan.window_steps, unit="frame", unit_scale=True, disable=not progress,
                 desc="collecting (the first chunk compiles)") as bar:
        while tally.kept < plan.target:
            if tally.episodes["run"] >= plan.max_episodes:
                raise CollectionError(_give_up(tally, plan))
            before = tally.kept
            run_chunk(program, plan, policy, teacher, cfg, (writer, tally, rng, key))
            bar.update((tally.kept - before) * plan.window_steps)
            bar.set_postfix(accepted=f"{tally.episodes['accepted'] / tally.episodes['run']:.1%}")
        card = make_card(teacher, cfg, plan, tally, time.monotonic() - t0, command)
        return writer.finish(card)


def make_card(teacher: Teacher, cfg: CollectConfig, plan: Plan, tally: Tally, seconds: float, command: str) -> dict:
    """Everything the card holds besides fields, sizes and statistics (``DatasetWriter.finish`` adds those)."""
    env_cfg, lib = plan.env.cfg, teacher.lib
    lengths = np.asarray(lib.clip_length)
    clips = [{"name": name, "frames": int(lengths[i]), **{k: int(v[i]) for k, v in tally.clip.items()}}
             for i, name in enumerate(lib.names)]
    steps = tally.episodes["run"] * plan.run_steps
    return {
        "control_hz": 1.0 / env_cfg.control_dt, "window_start": windows.WINDOW_START, "run_steps": plan.run_steps,
        "mirrored_windows": tally.kept if plan.copies == 2 else 0, "clips": clips, "teacher": teacher.describe(),
        "noise": {"kind": "ornstein_uhlenbeck", **dataclasses.asdict(cfg.noise),
                  "stationary_std": cfg.noise.stationary_std, "initial": "stationary"},
        "delay": {"max_steps": cfg.max_delay, **{k: v.tolist() for k, v in tally.delay.items()}},
        "episodes": dict(tally.episodes),
        "environment": {"impl": env_cfg.impl, "randomization": env_cfg.randomization.enabled,
                        "pushes": env_cfg.randomization.push.enabled, "observation_noise": env_cfg.noise.enabled,
                        "config": config_to_dict(env_cfg)},
        "collection": {"num_envs": cfg.num_envs, "seed": cfg.seed, "chunks": tally.chunks, "seconds": seconds,
                       "frames_per_s": tally.kept * plan.window_steps / max(seconds, 1e-9),
                       "env_steps_per_s": steps / max(seconds, 1e-9),
                       "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
                       "created_by": command or "python -m mimic_jax.collect"},
    }
