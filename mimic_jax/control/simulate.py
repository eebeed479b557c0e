"""The control bench's simulator: the guided diffusion controller on the shared episode runner, in MJX.

    sim = MJXSimulator(model, lib, impl="jax")            # lib: the clips the robots start from
    start = sim.starts(n)                                 # where the n robots start (character frames, world)
    rec = sim(bench.make_batch(name, cfg, start, lib), weight)      # a bench.Simulator

Every control step (50 Hz) :class:`GuidedController` (a Policy of ``envs/episodes.py``) encodes the robot's
world state (``obs["robot"]``, added by the runner's ``observe`` hook, :class:`RobotObservation`), slides its
history (``diffusion.policy.DiffusionPolicy``), takes the episode's costs of that step from the task plan
(``guidance.step_costs``: the joystick command of the step, the keyframe window) and, for inpainting, the
keyframe clamp (``guidance.step_clamp``), samples a plan with guidance weight ``weight`` and executes a_t.
Weight 0 is the unguided baseline: the same program, the cost gradient scaled by 0 (the inpainting clamp, a
constraint rather than guidance, still holds). The perturb task's kicks are the runner's ``kicks``.

The environment is the tracking environment in its clean evaluation setting (``envs.config.evaluation_config``:
no randomization, pushes, observation or reset noise), its terminations and clip end ignored
(``end_on_failure=False``): only non-finite physics ends an episode early. Robots start at reference frames
of the library (frame 0 of clip e mod M for episode e; the inpainting protocol's own first segment for
inpainting); no tracking reward or reference is used beyond that start pose. Step t of a :class:`Recorded`
is the robot before acting at control step t (the runner plays T + 1 steps for t = 0 .. T).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import states as st
from mimic_jax.control import costs as C
from mimic_jax.control import guidance as G
from mimic_jax.control.bench import Recorded, TaskBatch
from mimic_jax.diffusion.model import DiffusionModel
from mimic_jax.diffusion.policy import DiffusionPolicy, PolicyCarry, world_states
from mimic_jax.diffusion.sample import Guidance, Keyframes, sample
from mimic_jax.envs import episodes as runner
from mimic_jax.envs.config import EnvConfig, evaluation_config
from mimic_jax.envs.robot import body_velocities, robot_state
from mimic_jax.envs.tracking import TrackingEnv


@dataclasses.dataclass(frozen=True)
class RobotObservation:
    """The runner's ``observe`` hook: ``{"robot": RobotState [N], "step": [N] control step}``. Velocities are
    the environment's (``cvel`` of the last substep); at step 0, before any physics, the reset's (the
    reference's)."""

    body_ids: tuple[int, ...]

    def __call__(self, state, ref) -> dict:
        ids = np.asarray(self.body_ids)

        def one(data, step, ref_lin, ref_ang):
            lin, ang = body_velocities(data, ids)
            first = step == 0
            return robot_state(data, ids, jnp.where(first, ref_lin, lin), jnp.where(first, ref_ang, ang))

        return {"robot": jax.vmap(one)(state.data, state.step, ref.body_lin_vel, ref.body_ang_vel),
                "step": state.step}


class StepRecord(NamedTuple):
    world: st.WorldStates  # [N, ...] the robot before acting
    plan_root: jax.Array  # [N, H+1, 3] the planned root positions, world


def record_step(inp: runner.RecordInput) -> StepRecord:
    """The runner's recorder: the robot the policy saw and the root path it planned."""
    return StepRecord(world=world_states(inp.obs), plan_root=inp.policy_carry.plan_root)


class ControllerCarry(NamedTuple):
    policy: PolicyCarry
    plan_root: jax.Array  # [N, H+1, 3] the last plan's root positions, world


@struct.dataclass
class GuidedController:
    """The diffusion model steered by one task plan (rows [N], one per episode) at guidance weight ``weight``."""

    model: DiffusionModel
    plan: G.TaskPlan
    weight: jax.Array  # []

    def init(self, num_envs: int, key) -> ControllerCarry:
        horizon = self.model.cfg.model.horizon
        return ControllerCarry(DiffusionPolicy(self.model).init(num_envs, key), jnp.zeros((num_envs, horizon + 1, 3)))

    def guidance(self, step) -> Guidance:
        """Per-robot guidance at control steps ``step`` [N]: each episode's costs of that step."""
        costs = jax.vmap(G.step_costs)(self.plan, step)
        levels = self.model.cfg.diffusion.levels
        return Guidance(params=costs, weight=jnp.asarray(self.weight, jnp.float32), steps=jnp.ones(levels, bool),
                        cost=C.total, per_robot=True)

    def keyframes(self, step, frame: st.Frame) -> Keyframes | None:
        horizon = self.model.cfg.model.horizon
        clamp = jax.vmap(lambda p, s, f: G.step_clamp(p, s, f, horizon))(self.plan, step, frame)
        return None if clamp is None else Keyframes(mask=clamp.mask, states=clamp.states)

    def step(self, carry: ControllerCarry, obs: dict, key):
        base = DiffusionPolicy(self.model)
        history, inner = base.history(carry.policy, world_states(obs))
        step = obs["step"]
        key = key[0] if key.ndim > 1 else key  # the runner's per-episode keys: the first draws the batch's noise
        plan = sample(self.model, history, key, self.guidance(step), self.keyframes(step, history.frame))
        action = plan.actions[:, 0]
        frame = st.Frame(history.frame.origin[:, None], history.frame.yaw[:, None])
        root_w = st.from_frame(frame, st.root_pos(self.model.layout, plan.states))
        inner = inner._replace(actions=jnp.concatenate([inner.actions[:, 1:], action[:, None]], axis=1))
        return action, ControllerCarry(inner, root_w)


@functools.lru_cache(maxsize=4)
def controller_env(impl: str, num_motions: int) -> TrackingEnv:
    """One environment per backend and clip count, so that every batch of a run reuses its compiled programs."""
    return TrackingEnv(evaluation_config(EnvConfig(impl=impl)), num_motions)


def start_frames(lib, motion_id, frame) -> st.Frame:
    """The character frames [N] of the library's root at (motion_id, frame) [N]: where those robots start."""
    ref = lib.frame(jnp.asarray(motion_id), jnp.asarray(frame))
    return st.character_frame(ref.body_pos[:, st.ROOT], ref.body_quat[:, st.ROOT])


class MJXSimulator:
    """A ``bench.Simulator`` in MJX (module doc); ``plans`` of the last call: [T+1, N, H+1, 3], world."""

    def __init__(self, model: DiffusionModel, lib, *, impl: str = "jax", seed: int = 0):
        self.model, self.lib, self.seed = model, lib, int(seed)
        self.env = controller_env(impl, int(lib.num_motions))
        self.observe = RobotObservation(tuple(int(i) for i in self.env.body_ids))
        self.plans = None

    def start_of(self, n: int) -> runner.Start:
        """Episode e starts at frame 0 of clip e mod M."""
        motion = np.arange(n, dtype=np.int32) % int(self.lib.num_motions)
        zeros = np.zeros(n, np.int32)
        return runner.Start(motion_id=jnp.asarray(motion), frame=jnp.asarray(zeros), bin=jnp.asarray(zeros))

    def starts(self, n: int) -> st.Frame:
        """Where the robots of an n-episode batch start (the ``start`` of ``bench.make_batch``), world."""
        s = self.start_of(n)
        return jax.tree.map(np.asarray, start_frames(self.lib, s.motion_id, s.frame))

    def _start(self, batch: TaskBatch) -> runner.Start:
        n = int(np.shape(batch.start.origin)[0])
        if batch.task != "inpaint":
            return self.start_of(n)
        eps = batch.episodes
        return runner.Start(motion_id=jnp.asarray(eps.motion_id[:, 0]), frame=jnp.asarray(eps.start_frame[:, 0]),
                            bin=jnp.zeros(n, jnp.int32))

    def __call__(self, batch: TaskBatch, weight: float) -> Recorded:
        n, steps = int(np.shape(batch.start.origin)[0]), batch.steps + 1
        kicks = np.zeros((steps, n, 3), np.float32)
        if batch.task == "perturb":
            planned = np.swapaxes(np.asarray(batch.episodes.kicks), 0, 1)[:batch.steps]
            kicks[:len(planned)] = planned
        key = jax.random.PRNGKey(self.seed)
        world = runner.make_world(self.env, self.lib, n, jax.random.fold_in(key, 1), randomize=False)
        policy = GuidedController(model=self.model, plan=batch.plan, weight=jnp.float32(weight))
        out = runner.run_episodes(self.env, world, policy, self._start(batch), steps, jax.random.fold_in(key, 2),
                                  record_step, observe=self.observe, kicks=jnp.asarray(kicks), end_on_failure=False)
        out = jax.device_get(out)
        self.plans = np.asarray(out.records.plan_root)
        world_rec = st.WorldStates(*(np.asarray(x) for x in out.records.world))
        return Recorded(world=world_rec, valid=np.asarray(out.valid), kicks=kicks[:batch.steps])
