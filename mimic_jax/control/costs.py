"""Guidance costs on a predicted trajectory, in metres and seconds of the robot's world.

The sampler (``mimic_jax.diffusion``) denoises a future of states and actions; at each denoising step it moves
its prediction against the gradient of a scalar cost G (classifier guidance, x0 <- x0 - w grad G(x0), the
gradient taken through the inverse normalization and emphasis projection). G is a weighted sum of named terms:

    G(tau) = sum_name weight_name * term_name(tau, params_name)

Every term is a pure function ``term(inp: CostInput, params) -> scalar`` of ONE robot's prediction (the sampler
vmaps over robots), differentiable with ``jax.grad``. Goals and obstacles are pytree leaves (``params``), the
functions static, so a new goal recompiles nothing. The terms (published forms, Diffuse-CLoC / BeyondMimic):

* ``velocity``  1/2 sum_t ||V_xy,t - g_v||^2, the planar root velocity against a joystick command g_v given in
  the replanning character frame (+x is the robot's heading when it replans);
* ``yaw_rate``  1/2 sum_t (w_t - g_w)^2 with w_t the root's yaw rate by finite differences (turning);
* ``waypoint``  sum_t (1 - e^{-2d}) ||P_xy,t - g_p||^2 + e^{-2d} ||V_xy,t||^2 with d = ||P_xy,t - g_p||
  detached (no gradient flows through d): far away it pulls the path to the goal, near it asks to stand still;
* ``obstacles`` sum_t sum_b B(SDF(P_b,t) - r_b, delta) over body spheres (``BODY_RADII``), the relaxed
  log-barrier B of :func:`relaxed_barrier`, SDF the scene's signed distance (``scenes.scene_sdf``);
* ``keyframe``  1/2 sum (s - s_key)^2 over the keyframe dims of the predicted steps that have a keyframe (soft
  in-betweening, in ``mimic_jax.control.keyframes``; the hard form, clamping at noise level 0, is
  ``keyframes.constraint``).

Sums run over the H + 1 predicted states s_t..s_{t+H} (the first is the current state, fixed by the history).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.control import scenes

CONTROL_DT = 0.02  # s between predicted states (50 Hz)

# Radii (m) of the spheres centred on the tracked bodies' origins that stand for the robot in the obstacle cost
# and the collision check: coarse bounds of each body's collision geoms near its origin (our choice, stated).
BODY_RADII: dict[str, float] = {
    "pelvis": 0.12, "left_hip_roll_link": 0.09, "left_knee_link": 0.07, "left_ankle_roll_link": 0.08,
    "right_hip_roll_link": 0.09, "right_knee_link": 0.07, "right_ankle_roll_link": 0.08, "torso_link": 0.15,
    "left_shoulder_roll_link": 0.07, "left_elbow_link": 0.06, "left_wrist_yaw_link": 0.07,
    "right_shoulder_roll_link": 0.07, "right_elbow_link": 0.06, "right_wrist_yaw_link": 0.07,
}
ROOT_ONLY_RADIUS = 0.3  # m: a Joint-Pos state has no body positions; the root sphere then covers the robot


class CostInput(NamedTuple):
    """One robot's predicted trajectory, de-normalized: what every cost term reads."""

    states: jax.Array  # [H+1, D] s_t..s_{t+H}, global dims in the replanning character frame (mimic_jax.states)
    actions: jax.Array  # [H+1, 29]
    frame: st.Frame  # the replanning character frame in the world (to express world goals in it)


@struct.dataclass
class Term:
    """One named cost term: a static function, its parameters (leaves) and its weight (a leaf)."""

    fn: Callable[[CostInput, Any], jax.Array] = struct.field(pytree_node=False)
    params: Any
    weight: jax.Array


@struct.dataclass
class Costs:
    """A weighted sum of named terms (see the module doc); a pytree with the functions in its static part."""

    terms: dict[str, Term]

    def with_params(self, **params) -> "Costs":
        """The same costs with new parameters for the named terms (no recompilation: same structure)."""
        unknown = sorted(set(params) - set(self.terms))
        if unknown:
            raise KeyError(f"no cost term {unknown} (terms: {sorted(self.terms)})")
        terms = {k: t.replace(params=params[k]) if k in params else t for k, t in self.terms.items()}
        return Costs(terms=terms)


def costs(**terms: tuple[float, Callable, Any]) -> Costs:
    """``costs(velocity=(1.0, velocity, VelocityGoal(...)), ...)`` -> :class:`Costs`."""
    return Costs(terms={name: Term(fn=fn, params=params, weight=jnp.asarray(weight, jnp.float32))
                        for name, (weight, fn, params) in terms.items()})


def breakdown(inp: CostInput, cost: Costs) -> dict[str, jax.Array]:
    """Each term's weighted value."""
    return {name: t.weight * t.fn(inp, t.params) for name, t in cost.terms.items()}


def total(inp: CostInput, cost: Costs) -> jax.Array:
    """G: the sum of the weighted terms. This is the function the sampler's guidance differentiates."""
    return sum(breakdown(inp, cost).values(), jnp.zeros((), inp.states.dtype))


# -- reading a prediction -----------------------------------------------------------------------------------------
def layout_of(states_array) -> st.StateLayout:
    """The state layout of a [..., D] array, from its size D (static under jit)."""
    sizes = {layout.size: layout for layout in st.LAYOUTS.values()}
    if states_array.shape[-1] not in sizes:
        raise ValueError(f"states of size {states_array.shape[-1]} match no state layout "
                         f"({', '.join(f'{k}: {v.size}' for k, v in st.LAYOUTS.items())})")
    return sizes[states_array.shape[-1]]


def body_spheres(states_array) -> tuple[jax.Array, np.ndarray]:
    """(centres [..., T, S, 3] in the trajectory's frame, radii [S]): every tracked body for Body-Pos states,
    the root alone (radius ``ROOT_ONLY_RADIUS``) for Joint-Pos."""
    rep = layout_of(states_array)
    if rep.name == "body_pos":
        radii = np.array([BODY_RADII[n] for n in g1.TRACKED_BODY_NAMES], np.float32)
        return st.body_positions(states_array), radii
    return st.root_pos(rep, states_array)[..., None, :], np.array([ROOT_ONLY_RADIUS], np.float32)


def goal_in_frame(frame: st.Frame, goal_xy_w) -> jax.Array:
    """A world ground point (x, y) -> its (x, y) in ``frame``."""
    point = jnp.concatenate([goal_xy_w, jnp.zeros((1,), goal_xy_w.dtype)])
    return st.to_frame(frame, point)[:2]


def yaw_rates(states_array, dt: float = CONTROL_DT) -> jax.Array:
    """[T-1] root yaw rate (rad/s) between consecutive states (finite differences, wrapped to (-pi, pi])."""
    yaw = st.root_yaw(layout_of(states_array), states_array)
    step = yaw[1:] - yaw[:-1]
    return jnp.arctan2(jnp.sin(step), jnp.cos(step)) / dt


# -- terms ------------------------------------------------------------------------------------------------------
@struct.dataclass
class VelocityGoal:
    velocity: jax.Array  # [2] m/s, planar, in the replanning character frame (+x forward, +y left)


def velocity(inp: CostInput, p: VelocityGoal) -> jax.Array:
    """1/2 sum_t ||V_xy,t - g_v||^2."""
    v = st.root_lin_vel(layout_of(inp.states), inp.states)[:, :2]
    return 0.5 * jnp.sum(jnp.square(v - p.velocity))


@struct.dataclass
class YawRateGoal:
    rate: jax.Array  # [] rad/s, counter-clockwise seen from above (+ turns left)


def yaw_rate(inp: CostInput, p: YawRateGoal) -> jax.Array:
    """1/2 sum_t (w_t - g_w)^2 over the H yaw rates between the H + 1 states."""
    return 0.5 * jnp.sum(jnp.square(yaw_rates(inp.states) - p.rate))


@struct.dataclass
class WaypointGoal:
    position: jax.Array  # [2] m, world ground point (x, y)


def waypoint(inp: CostInput, p: WaypointGoal) -> jax.Array:
    """sum_t (1 - e^{-2d}) ||P_xy,t - g_p||^2 + e^{-2d} ||V_xy,t||^2, d = ||P_xy,t - g_p|| detached."""
    rep = layout_of(inp.states)
    offset = st.root_pos(rep, inp.states)[:, :2] - goal_in_frame(inp.frame, p.position)
    sq = jnp.sum(jnp.square(offset), axis=-1)
    near = jnp.exp(-2.0 * jax.lax.stop_gradient(jnp.sqrt(sq)))
    speed_sq = jnp.sum(jnp.square(st.root_lin_vel(rep, inp.states)[:, :2]), axis=-1)
    return jnp.sum((1.0 - near) * sq + near * speed_sq)


def relaxed_barrier(x, delta):
    """B(x) = -ln x for x >= delta, else -ln delta + 1/2 (((x - 2 delta) / delta)^2 - 1): the log-barrier
    continued below delta by the quadratic that matches its value and slope there (C1), finite for x <= 0."""
    log_branch = -jnp.log(jnp.maximum(x, delta))  # the max keeps the unused branch (and its gradient) finite
    quad_branch = -jnp.log(delta) + 0.5 * (jnp.square((x - 2.0 * delta) / delta) - 1.0)
    return jnp.where(x >= delta, log_branch, quad_branch)


@struct.dataclass
class ObstacleField:
    obstacles: scenes.Obstacles  # world frame
    delta: jax.Array  # [] m, where the barrier turns quadratic


def obstacles(inp: CostInput, p: ObstacleField) -> jax.Array:
    """sum_t sum_b B(SDF(P_b,t) - r_b, delta) over the body spheres of :func:`body_spheres`."""
    centres, radii = body_spheres(inp.states)
    world = st.from_frame(inp.frame, centres)
    clearance = scenes.scene_sdf(p.obstacles, world) - radii
    return jnp.sum(relaxed_barrier(clearance, p.delta))
