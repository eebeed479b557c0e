"""The diffusion controller as a Policy of the shared episode runner: replan every control step, execute a_t.

Protocol (``mimic_jax/envs/episodes.py``): ``init(num_envs, key) -> carry`` and
``step(carry, obs, key) -> (action [n, 29], carry)``; the policy is a flax struct pytree (the model's
weights and the guidance parameters are leaves), so one compiled episode program serves new weights or goals.

Each step the policy needs the robot's world-frame state. ASSUMPTION until the tracking env's obs dict
carries it: ``obs["robot"]`` is the batched ``envs.robot.RobotState`` of the current instant (what
``robot_state`` builds from MJX or MuJoCo data; :func:`mujoco_obs` makes it from ``mujoco.MjData``), read by
:func:`world_states`.

The carry keeps the last N + 1 states (global dims in the world-aligned frame at the world origin, so that
``states.reanchor`` can move them into the current step's character frame) and the last N executed actions
(the controller's own clean predictions). At the first step of an episode the history is the current state
repeated and the dataset's mean action: a standing start.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import states as st
from mimic_jax.diffusion.model import DiffusionModel
from mimic_jax.diffusion.sample import Guidance, History, sample
from mimic_jax.envs.robot import RobotState, body_velocities, robot_state


def world_states(obs: dict) -> st.WorldStates:
    """The world-frame states [n, ...] of ``obs["robot"]`` (see the module doc)."""
    r: RobotState = obs["robot"]
    return st.WorldStates(body_pos_w=r.body_pos, body_quat_w=r.body_quat, body_lin_vel_w=r.body_lin_vel,
                          body_ang_vel_w=r.body_ang_vel, joint_pos=r.joint_pos, joint_vel=r.joint_vel)


class _DataView(NamedTuple):
    """The ``MjData`` fields ``envs.robot`` reads, in float32."""

    qpos: np.ndarray
    qvel: np.ndarray
    xpos: np.ndarray
    xquat: np.ndarray
    cvel: np.ndarray
    subtree_com: np.ndarray


def mujoco_obs(datas, body_ids: np.ndarray) -> dict:
    """``{"robot": RobotState [n, ...]}`` from MuJoCo C data after ``mj_step`` (and ``mj_kinematics``), read
    with the environment's functions (``envs.robot``). Velocities come from ``cvel`` with the current body
    positions; evaluation/sim2sim.py shows how to match MJX exactly (positions of the last substep)."""
    def one(d):
        view = _DataView(*(np.asarray(getattr(d, f), np.float32) for f in _DataView._fields))
        return robot_state(view, body_ids, *body_velocities(view, body_ids))

    return {"robot": jax.tree.map(lambda *x: jnp.stack(x), *[one(d) for d in datas])}


class PolicyCarry(NamedTuple):
    states_w: jnp.ndarray  # [n, N + 1, D] s_{t-N} .. s_t, global dims in the world frame (module doc)
    actions: jnp.ndarray  # [n, N, 29] a_{t-N} .. a_{t-1}
    started: jnp.ndarray  # [n] bool: the history holds real steps


def _world_frame(n: int) -> st.Frame:
    return st.Frame(origin=jnp.zeros((n, 3)), yaw=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0]), (n, 1)))


@struct.dataclass
class DiffusionPolicy:
    model: DiffusionModel
    guidance: Guidance | None = None

    def init(self, num_envs: int, key) -> PolicyCarry:
        n, rep = self.model.cfg.model.history, self.model.layout
        return PolicyCarry(states_w=jnp.zeros((num_envs, n + 1, rep.size)),
                           actions=jnp.zeros((num_envs, n, self.model.normalizer.action_size)),
                           started=jnp.zeros(num_envs, bool))

    def history(self, carry: PolicyCarry, ws: st.WorldStates) -> tuple[History, PolicyCarry]:
        """The sampler's history after observing ``ws`` (re-anchored at the current step) and the new buffers."""
        rep, num = self.model.layout, ws.joint_pos.shape[0]
        s_w = st.encode_step(rep, ws, _world_frame(num))[:, None]
        started = carry.started[:, None, None]
        states_w = jnp.where(started, jnp.concatenate([carry.states_w[:, 1:], s_w], axis=1), s_w)
        actions = jnp.where(started, carry.actions, self.model.normalizer.action_mean)
        frame = st.character_frame(ws.body_pos_w[:, st.ROOT], ws.body_quat_w[:, st.ROOT])
        history = History(states=st.reanchor(rep, states_w, self.model.cfg.model.history), actions=actions,
                          frame=frame)
        return history, PolicyCarry(states_w, actions, jnp.ones(num, bool))

    def step(self, carry: PolicyCarry, obs: dict, key):
        history, carry = self.history(carry, world_states(obs))
        key = key[0] if key.ndim > 1 else key  # the runner's per-episode keys: the first draws the batch's noise
        action = sample(self.model, history, key, self.guidance).actions[:, 0]
        actions = jnp.concatenate([carry.actions[:, 1:], action[:, None]], axis=1)
        return action, carry._replace(actions=actions)
