"""What each task asks of the sampler at each control step: its costs (with the goal of that episode and step)
and, for inpainting, the keyframe clamp.

A :class:`TaskPlan` is built once per batch of episodes from a protocol's episodes (``protocols``), placed in
the world; inside the jitted closed loop, :func:`step_costs` reads one episode's row of it at the current
control step (the joystick command of that step; the keyframes' ``now``) and returns the :class:`Costs` that
the sampler's guidance differentiates. Only leaves change from step to step: nothing recompiles.

Weights: the sampler's guidance weight w scales grad G; within G the terms have their own weights. Defaults
are Diffuse-CLoC's where published (gamepad velocity 0.1, reaching 0.2, forest: obstacle 1 with waypoint
0.175, in-betweening 0.08); the yaw-rate term weight and the barrier's delta are ours.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import states as st
from mimic_jax.control import costs as C
from mimic_jax.control import keyframes as kf
from mimic_jax.control import protocols as proto
from mimic_jax.control import scenes


@dataclasses.dataclass(frozen=True, kw_only=True)
class GuidanceConfig:
    joystick_weight: float = 0.1  # sampler w (DC: gamepad velocity 0.1)
    yaw_rate_term: float = 1.0  # weight of the yaw-rate term beside the velocity term (ours)
    waypoint_weight: float = 0.2  # sampler w (DC: path following / reaching 0.2)
    obstacles_weight: float = 1.0  # sampler w (DC forest: obstacle 1, waypoint 0.175)
    obstacles_waypoint_term: float = 0.175
    barrier_delta: float = 0.1  # m (ours)
    inpaint_weight: float = 0.08  # sampler w (DC in-betweening: 0.08)
    inpaint_clamp: bool = True  # also clamp keyframe dims at noise level 0 (DC)

    def weight(self, task: str) -> float:
        """The sampler's default guidance weight for ``task`` (0 for walk + perturb: no guidance)."""
        return {"perturb": 0.0, "joystick": self.joystick_weight, "waypoint": self.waypoint_weight,
                "obstacles": self.obstacles_weight, "inpaint": self.inpaint_weight}[proto.check_task(task)]


@struct.dataclass
class TaskPlan:
    """The guidance of a batch of episodes of one task (leaves batched [N]); world frame."""

    costs: C.Costs  # every term's parameters, batched [N]; step-dependent ones are refreshed by step_costs
    commands: jax.Array  # [N, T, 3] joystick (vx, vy, yaw rate) per step; [N, 1, 3] zeros for other tasks
    keys: kf.Keyframes | None  # inpainting keyframes [N, K], else None
    task: str = struct.field(pytree_node=False)
    clamp: bool = struct.field(pytree_node=False, default=False)


def _batched(x, n: int):
    return jnp.broadcast_to(jnp.asarray(x), (n,) + jnp.shape(x))


def _per_episode(costs: C.Costs, n: int) -> C.Costs:
    """Term weights broadcast to [N], so every leaf of a plan is batched (vmap over episodes)."""
    return C.Costs(terms={k: t.replace(weight=_batched(t.weight, n)) for k, t in costs.terms.items()})


def _joystick_costs(cfg: GuidanceConfig, n: int) -> C.Costs:
    return C.costs(velocity=(1.0, C.velocity, C.VelocityGoal(jnp.zeros((n, 2)))),
                   yaw_rate=(cfg.yaw_rate_term, C.yaw_rate, C.YawRateGoal(jnp.zeros((n,)))))


def plan(task: str, episodes, start: st.Frame, cfg: GuidanceConfig = GuidanceConfig()) -> TaskPlan:
    """The :class:`TaskPlan` of a protocol's ``episodes`` whose robots start at character frames ``start`` [N]."""
    p = _plan(proto.check_task(task), episodes, start, cfg)
    return p.replace(costs=_per_episode(p.costs, int(np.shape(start.origin)[0])))


def _plan(task: str, episodes, start: st.Frame, cfg: GuidanceConfig) -> TaskPlan:
    n = int(np.shape(start.origin)[0])
    none = jnp.zeros((n, 1, 3))
    if task == "perturb":
        return TaskPlan(costs=C.costs(), commands=none, keys=None, task=task)
    if task == "joystick":
        return TaskPlan(costs=_joystick_costs(cfg, n), commands=jnp.asarray(episodes.commands), keys=None, task=task)
    if task in ("waypoint", "obstacles"):
        goal = C.WaypointGoal(jnp.asarray(proto.to_world(episodes.goal, start)))
        if task == "waypoint":
            return TaskPlan(costs=C.costs(waypoint=(1.0, C.waypoint, goal)), commands=none, keys=None, task=task)
        field = C.ObstacleField(jax.tree.map(jnp.asarray, proto.obstacles_to_world(episodes.obstacles, start)),
                                _batched(jnp.float32(cfg.barrier_delta), n))
        terms = C.costs(obstacles=(1.0, C.obstacles, field),
                        waypoint=(cfg.obstacles_waypoint_term, C.waypoint, goal))
        return TaskPlan(costs=terms, commands=none, keys=None, task=task)
    keys = jax.tree.map(jnp.asarray, episodes.keyframes)
    goal = kf.KeyframeGoal(keys=keys, now=jnp.zeros((n,), jnp.int32))
    return TaskPlan(costs=C.costs(keyframe=(1.0, kf.keyframe, goal)), commands=none, keys=keys, task=task,
                    clamp=cfg.inpaint_clamp)


def row(p: TaskPlan, i: int) -> TaskPlan:
    """Episode ``i`` of a plan (what a vmapped controller sees)."""
    return jax.tree.map(lambda x: x[i], p)


def step_costs(p: TaskPlan, step) -> C.Costs:
    """One episode's costs at control step ``step`` (``p`` one row of a plan, as under vmap)."""
    if p.task == "joystick":
        cmd = p.commands[jnp.minimum(step, p.commands.shape[0] - 1)]
        return p.costs.with_params(velocity=C.VelocityGoal(cmd[:2]), yaw_rate=C.YawRateGoal(cmd[2]))
    if p.task == "inpaint":
        return p.costs.with_params(keyframe=kf.KeyframeGoal(keys=p.keys, now=jnp.asarray(step, jnp.int32)))
    return p.costs


def step_clamp(p: TaskPlan, step, frame: st.Frame, horizon: int) -> kf.StepClamp | None:
    """One episode's keyframe clamp at ``step`` from replanning frame ``frame`` (None unless inpainting)."""
    if p.task != "inpaint" or not p.clamp:
        return None
    return kf.state_clamp(p.keys, frame, step, horizon)


def scene_of(p: TaskPlan, i: int) -> tuple[np.ndarray | None, scenes.Obstacles | None]:
    """(goal [2], obstacles) of episode ``i`` in the world, for drawing and metrics (None where not used)."""
    terms = p.costs.terms
    goal = np.asarray(terms["waypoint"].params.position[i]) if "waypoint" in terms else None
    if "obstacles" not in terms:
        return goal, None
    return goal, jax.tree.map(lambda x: np.asarray(x[i]), terms["obstacles"].params.obstacles)
