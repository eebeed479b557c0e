"""The control bench's simulators: the guided diffusion controller on the shared episode runner in MJX, and
the same controller on MuJoCo C (``--sim2sim``).

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

:class:`MuJoCoSimulator` plays the same batches on MuJoCo C (``mujoco.mj_step``, one ``MjData`` per robot, a
Python loop over control steps) with the same jitted controller step, reset (the reference pose and velocities),
actuation (ctrl = default + scale * action, 4 substeps, joint speeds clamped to the motor limits after each,
as the MJX environment does), kicks and readings (body velocities from ``cvel`` with the body positions of the
last substep, as ``evaluation/sim2sim.py``): what differs is the engine.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import math as jm
from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.control import costs as C
from mimic_jax.control import guidance as G
from mimic_jax.control.bench import Recorded, TaskBatch
from mimic_jax.diffusion.model import DiffusionModel
from mimic_jax.diffusion.policy import DiffusionPolicy, PolicyCarry, world_states
from mimic_jax.diffusion.sample import Guidance, Keyframes, sample
from mimic_jax.envs import episodes as runner
from mimic_jax.envs.config import EnvConfig, evaluation_config
from mimic_jax.envs.robot import RobotState, body_velocities, robot_state
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


# One controller step outside the runner (MuJoCo C, latency figures, tests): one program per structure and shapes.
controller_step = jax.jit(lambda policy, carry, obs, key: policy.step(carry, obs, key))


@functools.lru_cache(maxsize=4)
def controller_env(impl: str, num_motions: int) -> TrackingEnv:
    """One environment per backend and clip count, so that every batch of a run reuses its compiled programs."""
    return TrackingEnv(evaluation_config(EnvConfig(impl=impl)), num_motions)


def start_frames(lib, motion_id, frame) -> st.Frame:
    """The character frames [N] of the library's root at (motion_id, frame) [N]: where those robots start."""
    ref = lib.frame(jnp.asarray(motion_id), jnp.asarray(frame))
    return st.character_frame(ref.body_pos[:, st.ROOT], ref.body_quat[:, st.ROOT])


class _Starts:
    """Where a batch's robots start (module doc), shared by both simulators."""

    lib = None

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



def _kicks(batch: TaskBatch) -> np.ndarray:
    """[T+1, N, 3] the root-velocity kicks of each step (zeros but for the perturb task)."""
    n = int(np.shape(batch.start.origin)[0])
    kicks = np.zeros((batch.steps + 1, n, 3), np.float32)
    if batch.task == "perturb":
        planned = np.swapaxes(np.asarray(batch.episodes.kicks), 0, 1)[:batch.steps]
        kicks[:len(planned)] = planned
    return kicks


class MJXSimulator(_Starts):
    """A ``bench.Simulator`` in MJX (module doc); ``plans`` of the last call: [T+1, N, H+1, 3], world."""

    def __init__(self, model: DiffusionModel, lib, *, impl: str = "jax", seed: int = 0):
        self.model, self.lib, self.seed = model, lib, int(seed)
        self.env = controller_env(impl, int(lib.num_motions))
        self.observe = RobotObservation(tuple(int(i) for i in self.env.body_ids))
        self.plans = None

    def __call__(self, batch: TaskBatch, weight: float) -> Recorded:
        n, steps = int(np.shape(batch.start.origin)[0]), batch.steps + 1
        kicks = _kicks(batch)
        key = jax.random.PRNGKey(self.seed)
        world = runner.make_world(self.env, self.lib, n, jax.random.fold_in(key, 1), randomize=False)
        policy = GuidedController(model=self.model, plan=batch.plan, weight=jnp.float32(weight))
        out = runner.run_episodes(self.env, world, policy, self._start(batch), steps, jax.random.fold_in(key, 2),
                                  record_step, observe=self.observe, kicks=jnp.asarray(kicks), end_on_failure=False)
        out = jax.device_get(out)
        self.plans = np.asarray(out.records.plan_root)
        world_rec = st.WorldStates(*(np.asarray(x) for x in out.records.world))
        return Recorded(world=world_rec, valid=np.asarray(out.valid), kicks=kicks[:batch.steps])


class _View(NamedTuple):
    """What ``envs.robot`` reads off one ``MjData`` (float32; ``xpos`` of the last substep for the velocities)."""

    qpos: np.ndarray
    qvel: np.ndarray
    xpos: np.ndarray
    xquat: np.ndarray
    cvel: np.ndarray
    subtree_com: np.ndarray


class MuJoCoSimulator(_Starts):
    """A ``bench.Simulator`` on MuJoCo C (module doc); ``plans`` as :class:`MJXSimulator`'s."""

    def __init__(self, model: DiffusionModel, lib, *, seed: int = 0, progress: bool = False):
        self.model, self.lib, self.seed, self.progress = model, lib, int(seed), progress
        cfg = evaluation_config(EnvConfig(impl="jax"))
        self.cfg, self.mj = cfg, g1.load_model(collisions=cfg.collisions)
        self.mj.opt.timestep = cfg.physics_dt
        self.body_ids = g1.body_ids(self.mj, g1.TRACKED_BODY_NAMES)
        table = g1.joint_table()
        self.default_pos, self.scale = table.default_pos.astype(np.float64), table.action_scale
        self.velocity_limit = table.velocity_limit if cfg.joint_velocity_limits else None
        self.plans = None

    def _reset(self, start: runner.Start) -> list:
        import mujoco

        ref = jax.tree.map(np.asarray, self.lib.frame(start.motion_id, start.frame))
        datas = []
        for i in range(len(np.asarray(start.frame))):
            d = mujoco.MjData(self.mj)
            quat = ref.body_quat[i, st.ROOT]
            d.qpos[:] = np.concatenate([ref.body_pos[i, st.ROOT], quat, ref.joint_pos[i]])
            ang_b = np.asarray(jm.quat_rotate_inv(jnp.asarray(quat), jnp.asarray(ref.body_ang_vel[i, st.ROOT])))
            d.qvel[:] = np.concatenate([ref.body_lin_vel[i, st.ROOT], ang_b, ref.joint_vel[i]])
            d.ctrl[:] = self.default_pos
            mujoco.mj_forward(self.mj, d)
            datas.append(d)
        return datas

    def _observe(self, datas, xpos_substep, step: int) -> dict:
        def one(d, xs):
            f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
            view = _View(f32(d.qpos), f32(d.qvel), f32(xs), f32(d.xquat), f32(d.cvel), f32(d.subtree_com))
            lin, ang = body_velocities(view, self.body_ids)
            return robot_state(view._replace(xpos=f32(d.xpos)), self.body_ids, lin, ang)

        robots = [one(d, xs) for d, xs in zip(datas, xpos_substep)]
        robot = RobotState(*(np.stack([np.asarray(getattr(r, f)) for r in robots])
                             for f in RobotState.__dataclass_fields__))
        return {"robot": robot, "step": np.full(len(datas), step, np.int32)}

    def _physics(self, d, action, kick) -> np.ndarray:
        """One control step of one robot; returns the body positions of the last substep."""
        import mujoco

        d.qvel[0:3] += kick
        d.ctrl[:] = self.default_pos + self.scale * action
        for _ in range(self.cfg.decimation):
            mujoco.mj_step(self.mj, d)
            if self.velocity_limit is not None:
                d.qvel[6:] = np.clip(d.qvel[6:], -self.velocity_limit, self.velocity_limit)
        xpos = d.xpos.copy()
        mujoco.mj_kinematics(self.mj, d)
        return xpos

    def __call__(self, batch: TaskBatch, weight: float) -> Recorded:
        from tqdm import tqdm

        start = self._start(batch)
        n, steps, kicks = len(np.asarray(start.frame)), batch.steps + 1, _kicks(batch)
        datas = self._reset(start)
        xpos = [d.xpos.copy() for d in datas]
        policy = GuidedController(model=self.model, plan=batch.plan, weight=jnp.float32(weight))
        key = jax.random.PRNGKey(self.seed)
        carry = policy.init(n, jax.random.fold_in(key, 1))
        alive, valid, worlds, plans = np.ones(n, bool), [], [], []
        for t in tqdm(range(steps), desc=f"MuJoCo C {batch.name} w={weight:g}", disable=not self.progress):
            obs = self._observe(datas, xpos, t)
            action, carry = controller_step(policy, carry, obs, jax.random.fold_in(key, 2 + t))
            worlds.append(world_states(obs))
            plans.append(np.asarray(carry.plan_root))
            valid.append(alive.copy())
            for i, d in enumerate(datas):
                if alive[i]:
                    xpos[i] = self._physics(d, np.asarray(action[i], np.float64), kicks[t, i])
                    alive[i] = bool(np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel)))
        self.plans = np.stack(plans)
        world = st.WorldStates(*(np.stack([np.asarray(w[f]) for w in worlds]) for f in range(len(st.WorldStates._fields))))
        return Recorded(world=world, valid=np.stack(valid), kicks=kicks[:batch.steps])
