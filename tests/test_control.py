"""Guided control: costs (values and gradients against hand-computed cases), scenes, keyframes, protocols,
metrics, the task plans, the control CLI's refusals, and the guided controller itself on a tiny random model:
its guidance, and one MJX episode program (2 robots, a few steps) shared by the simulator and CLI tests."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.control import bench as B
from mimic_jax.control import costs as C
from mimic_jax.control import guidance as G
from mimic_jax.control import keyframes as kf
from mimic_jax.control import metrics as M
from mimic_jax.control import play as PL
from mimic_jax.control import protocols as P
from mimic_jax.control import scenes as S

H = 4  # predicted steps after the current one
DT = C.CONTROL_DT
IDENTITY = st.Frame(origin=jnp.zeros(3), yaw=jnp.array([1.0, 0.0, 0.0, 0.0]))


def _yaw(angle):
    return jnp.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


def _states(layout="body_pos", pos=None, vel=None, yaw=None):
    """[H+1, D] states: root positions / velocities [H+1, 3] and heading (rad) [H+1]; other dims zero (every
    Body-Pos body then sits at the root)."""
    rep = st.layout(layout)
    x = jnp.zeros((H + 1, rep.size))
    if pos is not None:
        x = x.at[:, rep.slice("root_pos")].set(jnp.asarray(pos, jnp.float32))
    if vel is not None:
        x = x.at[:, rep.slice("root_lin_vel")].set(jnp.asarray(vel, jnp.float32))
    if yaw is not None:
        x = x.at[:, rep.slice("root_rotvec").start + 2].set(jnp.asarray(yaw, jnp.float32))
    return x


def _inp(states, frame=IDENTITY):
    return C.CostInput(states=states, actions=jnp.zeros((states.shape[0], g1.NUM_JOINTS)), frame=frame)


@functools.cache
def _program(term):
    """term(states) and its gradient in one compiled program (much cheaper than op-by-op on this CPU)."""
    return jax.jit(jax.value_and_grad(lambda s, p, f: term(_inp(s, f), p)))


def _value(term, params, states, frame=IDENTITY):
    return _program(term)(states, params, frame)


def _grad(term, params, states, frame=IDENTITY):
    return _value(term, params, states, frame)[1]


# -- relaxed barrier ----------------------------------------------------------------------------------------------
def test_barrier_branches_and_c1_continuity():
    delta = 0.1
    b = lambda x: C.relaxed_barrier(jnp.float32(x), jnp.float32(delta))  # noqa: E731
    np.testing.assert_allclose(b(1.0), 0.0, atol=1e-7)  # -ln 1
    np.testing.assert_allclose(b(0.5), -math.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(b(2 * delta), -math.log(2 * delta), rtol=1e-6)  # log branch
    np.testing.assert_allclose(b(0.0), -math.log(delta) + 1.5, rtol=1e-6)  # 1/2 ((−2)^2 − 1)
    np.testing.assert_allclose(b(-0.1), -math.log(delta) + 0.5 * (9 - 1), rtol=1e-6)
    grad = jax.grad(lambda x: C.relaxed_barrier(x, jnp.float32(delta)))
    np.testing.assert_allclose(grad(jnp.float32(0.5)), -2.0, rtol=1e-6)  # -1/x
    np.testing.assert_allclose(grad(jnp.float32(0.0)), -2 * delta / delta**2, rtol=1e-6)  # (x - 2d)/d^2
    # C1 at delta: both branches meet with the same value and slope -1/delta.
    eps = 1e-4
    np.testing.assert_allclose(b(delta - eps), b(delta + eps), atol=2e-3)
    np.testing.assert_allclose(grad(jnp.float32(delta - eps)), -1 / delta, rtol=2e-3)
    np.testing.assert_allclose(grad(jnp.float32(delta + eps)), -1 / delta, rtol=2e-3)
    np.testing.assert_allclose(b(delta), -math.log(delta), rtol=1e-6)
    assert np.isfinite(grad(jnp.float32(-5.0)))


# -- joystick -----------------------------------------------------------------------------------------------------
def test_velocity_cost_value_and_gradient():
    vel = np.tile([0.5, 0.2, 0.1], (H + 1, 1))
    x = _states(vel=vel)
    goal = C.VelocityGoal(jnp.array([1.0, 0.0]))
    expected = 0.5 * (H + 1) * ((0.5 - 1.0) ** 2 + 0.2**2)  # the vertical velocity is not costed
    np.testing.assert_allclose(_value(C.velocity, goal, x)[0], expected, rtol=1e-6)
    g = _grad(C.velocity, goal, x)
    vel_dims = st.BODY_POS.slice("root_lin_vel")
    np.testing.assert_allclose(g[:, vel_dims], np.tile([-0.5, 0.2, 0.0], (H + 1, 1)), atol=1e-6)
    assert float(jnp.abs(g).sum()) == pytest.approx(float(jnp.abs(g[:, vel_dims]).sum()))


def test_yaw_rate_cost_value_and_gradient():
    """Heading 0.1 rad more each step: 5 rad/s against a goal of 4 rad/s."""
    x = _states(yaw=0.1 * np.arange(H + 1))
    goal = C.YawRateGoal(jnp.float32(4.0))
    np.testing.assert_allclose(C.yaw_rates(x), np.full(H, 5.0), rtol=1e-5)
    np.testing.assert_allclose(_value(C.yaw_rate, goal, x)[0], 0.5 * H * 1.0, rtol=1e-4)
    g = _grad(C.yaw_rate, goal, x)[:, st.BODY_POS.slice("root_rotvec").start + 2]
    # dG/dyaw_k = (e_{k-1} - e_k) / dt with every e = 1: only the ends move.
    np.testing.assert_allclose(g, [-1 / DT, 0, 0, 0, 1 / DT], atol=2e-2)


# -- waypoint -----------------------------------------------------------------------------------------------------
def test_waypoint_cost_detaches_distance_and_reads_the_frame():
    """Root walking along +x of a frame at (1, 1) turned 90 degrees; the world goal (1, 4) is 3 m ahead in it."""
    frame = st.Frame(origin=jnp.array([1.0, 1.0, 0.0]), yaw=_yaw(np.pi / 2))
    px = 0.5 * np.arange(H + 1)
    x = _states(pos=np.stack([px, np.zeros(H + 1), np.full(H + 1, 0.8)], -1), vel=np.tile([0.5, 0, 0], (H + 1, 1)))
    goal = C.WaypointGoal(jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(C.goal_in_frame(frame, goal.position), [3.0, 0.0], atol=1e-6)
    d = 3.0 - px
    near = np.exp(-2 * d)
    value, g = _value(C.waypoint, goal, x, frame)
    np.testing.assert_allclose(value, np.sum((1 - near) * d**2 + near * 0.25), rtol=1e-5)
    np.testing.assert_allclose(g[:, 0], (1 - near) * 2 * (px - 3.0), rtol=1e-5)  # d held constant
    np.testing.assert_allclose(g[:, 3], near * 2 * 0.5, rtol=1e-5)
    # Without the detach the gradient would differ by 2 e^{-2d} (d^2 - v^2) dd/dx: this is what is pinned.
    attached = -2 * near * (d**2 - 0.25)
    assert np.max(np.abs(attached)) > 0.05


# -- signed distances and obstacles -------------------------------------------------------------------------------
def test_sdf_cylinder_and_box_hand_values():
    c, r, h = jnp.array([1.0, 2.0]), 0.2, 2.0
    cylinder = jax.jit(lambda p: S.sdf_cylinder(p, c, r, h))
    sdf = lambda p: float(cylinder(jnp.array(p, jnp.float32)))  # noqa: E731
    assert sdf([1.0, 3.0, 1.0]) == pytest.approx(0.8)  # beside
    assert sdf([1.0, 2.0, 2.5]) == pytest.approx(0.5)  # above the top, on the axis
    assert sdf([1.5, 2.0, 2.4]) == pytest.approx(0.5)  # off the rim: (0.3, 0.4) away
    assert sdf([1.0, 2.0, 1.0]) == pytest.approx(-0.2)  # on the axis inside
    g = jax.grad(lambda p: S.sdf_cylinder(p, c, r, h))(jnp.array([1.0, 2.0, 1.0]))
    assert np.all(np.isfinite(g))
    box_sdf = jax.jit(lambda p: S.sdf_box(p, jnp.zeros(3), jnp.array([1.0, 0.2, 0.5]), np.pi / 2))
    box = lambda p: float(box_sdf(jnp.array(p, jnp.float32)))  # noqa: E731
    assert box([0.0, 1.5, 0.0]) == pytest.approx(0.5, abs=1e-6)  # the long side now lies along y
    assert box([0.5, 0.0, 0.0]) == pytest.approx(0.3, abs=1e-6)
    assert box([0.0, 0.0, 0.0]) == pytest.approx(-0.2, abs=1e-6)
    obs = S.make_obstacles([(1.0, 2.0, 0.2, 2.0)], [(0.0, 0.0, 0.0, 1.0, 0.2, 0.5, np.pi / 2)], slots=(3, 2))
    scene = jax.jit(S.scene_sdf)
    assert float(scene(obs, jnp.array([0.0, 1.5, 0.0]))) == pytest.approx(0.5, abs=1e-6)
    assert float(scene(S.empty(3, 2), jnp.zeros(3))) == S.FAR  # inactive slots are far away


def test_obstacle_cost_one_sphere_both_barrier_branches():
    """Joint-Pos: the root sphere (radius 0.3) in front of a pillar of radius 0.2; the frame is turned 90 degrees
    at (5, 5), so the pillar at world (5, 6.5) is 1.5 m straight ahead of the root."""
    frame = st.Frame(origin=jnp.array([5.0, 5.0, 0.0]), yaw=_yaw(np.pi / 2))
    field = C.ObstacleField(S.make_obstacles([(5.0, 6.5, 0.2, 2.0)], slots=(2, 1)), jnp.float32(0.1))
    far = _states("joint_pos", pos=np.tile([0.0, 0.0, 0.8], (H + 1, 1)))
    # clearance 1.5 - 0.2 - 0.3 = 1.0: B = -ln 1 = 0, dB/dx = -1/1 * dSDF/dx = +1 per step.
    np.testing.assert_allclose(_value(C.obstacles, field, far, frame)[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(_grad(C.obstacles, field, far, frame)[:, 0], np.ones(H + 1), rtol=1e-5)
    near = _states("joint_pos", pos=np.tile([1.05, 0.0, 0.8], (H + 1, 1)))
    x = 0.45 - 0.2 - 0.3  # -0.05, below delta: the quadratic branch
    value = -math.log(0.1) + 0.5 * (((x - 0.2) / 0.1) ** 2 - 1)
    np.testing.assert_allclose(_value(C.obstacles, field, near, frame)[0], (H + 1) * value, rtol=1e-5)
    np.testing.assert_allclose(_grad(C.obstacles, field, near, frame)[:, 0], np.full(H + 1, 25.0), rtol=1e-4)


def test_obstacle_cost_sums_every_body_sphere():
    """Body-Pos with every body at the root, 0.8 m from a box face: sum_b -ln(0.8 - r_b)."""
    field = C.ObstacleField(S.make_obstacles(boxes=[(1.0, 0.0, 0.5, 0.2, 0.5, 0.5, 0.0)]), jnp.float32(0.1))
    x = _states(pos=np.tile([0.0, 0.0, 0.8], (H + 1, 1)))
    centres, radii = C.body_spheres(x)
    assert centres.shape == (H + 1, 14, 3) and radii.shape == (14,)
    expected = (H + 1) * sum(-math.log(0.8 - r) for r in C.BODY_RADII.values())
    np.testing.assert_allclose(_value(C.obstacles, field, x)[0], expected, rtol=1e-5)


# -- composition --------------------------------------------------------------------------------------------------
def test_costs_sum_named_weighted_terms_without_recompiling():
    x = _states(pos=np.tile([0.0, 0.0, 0.8], (H + 1, 1)), vel=np.tile([0.3, 0.0, 0.0], (H + 1, 1)))
    vel_goal, way_goal = C.VelocityGoal(jnp.array([1.0, 0.0])), C.WaypointGoal(jnp.array([2.0, 1.0]))
    cost = C.costs(velocity=(0.5, C.velocity, vel_goal), waypoint=(2.0, C.waypoint, way_goal))
    (v_val, v_grad), (w_val, w_grad) = _value(C.velocity, vel_goal, x), _value(C.waypoint, way_goal, x)
    value, g = _value(C.total, cost, x)
    np.testing.assert_allclose(value, 0.5 * v_val + 2.0 * w_val, rtol=1e-6)
    np.testing.assert_allclose(g, 0.5 * v_grad + 2.0 * w_grad, rtol=1e-5, atol=1e-6)
    parts = jax.jit(C.breakdown)(_inp(x), cost)
    assert sorted(parts) == ["velocity", "waypoint"]
    np.testing.assert_allclose(parts["waypoint"], 2.0 * w_val, rtol=1e-6)
    traces = []

    @jax.jit
    def value(c):
        traces.append(1)
        return C.total(_inp(x), c)

    first = value(cost)
    second = value(cost.with_params(waypoint=C.WaypointGoal(jnp.array([-3.0, 0.0]))))
    assert len(traces) == 1 and float(first) != float(second)
    with pytest.raises(KeyError, match="no cost term"):
        cost.with_params(nope=vel_goal)


def test_layout_from_size():
    assert C.layout_of(jnp.zeros((3, 87))).name == "body_pos"
    assert C.layout_of(jnp.zeros((3, 67))).name == "joint_pos"
    with pytest.raises(ValueError, match="match no state layout"):
        C.layout_of(jnp.zeros((3, 50)))


# -- scenes -------------------------------------------------------------------------------------------------------
def test_scene_validation_refuses_in_one_line(tmp_path):
    obs = S.make_obstacles([(3.0, 0.0, 0.4, 2.0)])
    S.validate([5.0, 0.0], obs)
    with pytest.raises(S.SceneError, match=r"the goal \(3.10, 0.00\) is inside cylinder 0") as err:
        S.validate([3.1, 0.0], obs)
    assert "\n" not in str(err.value)
    with pytest.raises(S.SceneError, match="the start .* is 0.10 m from cylinder 0"):
        S.validate([5.0, 0.0], obs, start_xy=(2.5, 0.0))
    with pytest.raises(S.SceneError, match="two finite numbers"):
        S.validate([np.nan, 0.0], obs)
    scene = {"goal": [6.0, 1.0], "cylinders": [{"center": [3.0, 0.2], "radius": 0.25, "height": 2.0}],
             "boxes": [{"center": [4.5, -1.0, 0.5], "half_size": [0.3, 0.6, 0.5], "yaw": 0.3}]}
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(scene))
    goal, loaded = S.load_scene(path)
    np.testing.assert_allclose(goal, [6.0, 1.0])
    assert loaded.num_slots == (1, 1) and bool(loaded.box_active[0])
    bad = {"inside.json": {**scene, "goal": [3.0, 0.3]}, "radius.json": {**scene, "cylinders": [{"center": [1, 1],
           "radius": -1}]}, "key.json": {**scene, "walls": []}, "half.json": {**scene, "boxes": [{"center": [1, 1, 1],
           "half_size": [1, 0]}]}}
    messages = {"inside.json": "is inside cylinder 0", "radius.json": "radius must be a positive number",
                "key.json": "an object with 'goal'", "half.json": "half_size must be a list of 3"}
    for name, doc in bad.items():
        (tmp_path / name).write_text(json.dumps(doc))
        with pytest.raises(S.SceneError, match=messages[name]):
            S.load_scene(tmp_path / name)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(S.SceneError, match="not a JSON scene file"):
        S.load_scene(tmp_path / "broken.json")
    with pytest.raises(S.SceneError, match="no such scene file"):
        S.load_scene(tmp_path / "missing.json")


# -- keyframes ----------------------------------------------------------------------------------------------------
def _world(root_xy, heading, n=1):
    """WorldStates [n, ...] with every body at the root (x, y, 0.75), turned by ``heading``."""
    pos = np.zeros((n, st.NUM_BODIES, 3), np.float32)
    pos[..., :2], pos[..., 2] = root_xy, 0.75
    quat = np.broadcast_to(np.asarray(_yaw(heading)), (n, st.NUM_BODIES, 4))
    zeros = np.zeros((n, st.NUM_BODIES, 3), np.float32)
    return st.WorldStates(jnp.asarray(pos), jnp.asarray(quat), jnp.asarray(zeros), jnp.asarray(zeros),
                          jnp.zeros((n, 29)), jnp.zeros((n, 29)))


def test_keyframe_clamp_window_and_frame():
    """Keyframes at steps 5 and 7; a replan at step 5 with H = 4 from a frame at (1, 1) turned 90 degrees: only
    step 7 lands (index 2; index 0 is the current state), with the world root (2, 1) at (0, -1) in the frame."""
    world = st.WorldStates(*(jnp.concatenate([a, b]) for a, b in zip(_world((9.0, 9.0), 0.0), _world((2.0, 1.0),
                                                                                                     np.pi / 2))))
    keys = kf.Keyframes(step=jnp.array([5, 7]), world=world, dims=jnp.asarray(kf.dims_mask("body_pos")))
    frame = st.Frame(origin=jnp.array([1.0, 1.0, 0.0]), yaw=_yaw(np.pi / 2))
    clamp = jax.jit(kf.constraint, static_argnums=3)(keys, frame, 5, H)
    assert clamp.mask.shape == (H + 1, 87)
    assert np.flatnonzero(np.asarray(clamp.mask).any(axis=1)).tolist() == [2]
    np.testing.assert_array_equal(np.asarray(clamp.mask[2]), kf.dims_mask("body_pos"))
    np.testing.assert_allclose(clamp.values[2, :3], [0.0, -1.0, 0.75], atol=1e-6)
    np.testing.assert_allclose(clamp.values[2, 6:9], [0.0, 0.0, 0.0], atol=1e-6)  # facing the frame's heading
    assert kf.dims_mask("body_pos")[3:6].sum() == 0 and kf.dims_mask("body_pos").sum() == 3 + 3 + 39
    # The soft term is half the squared distance to those targets over the clamped dims.
    x = jnp.zeros((H + 1, 87))
    goal = kf.KeyframeGoal(keys=keys, now=jnp.int32(5))
    value, grad = _value(kf.keyframe, goal, x, frame)
    np.testing.assert_allclose(value, 0.5 * (1.0 + 0.75**2), rtol=1e-5)
    np.testing.assert_allclose(grad[2, :3], [0.0, 1.0, -0.75], atol=1e-5)


def test_join_places_each_segment_at_the_previous_end():
    first = _world((0.0, 0.0), 0.0, n=3)
    first = first._replace(body_pos_w=first.body_pos_w.at[:, :, 0].set(jnp.arange(3.0)[:, None]))  # walks +x
    second = _world((5.0, 5.0), np.pi / 2, n=2)
    joined = kf.join([first, second])
    assert joined.body_pos_w.shape[0] == 5
    np.testing.assert_allclose(joined.body_pos_w[3, 0], [2.0, 0.0, 0.75], atol=1e-6)  # the second starts there
    np.testing.assert_allclose(jm_yaw(joined.body_quat_w[3, 0]), 0.0, atol=1e-6)  # ... with the first's heading


def jm_yaw(q):
    w, x, y, z = np.asarray(q)
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


# -- protocols ----------------------------------------------------------------------------------------------------
CLIPS = Path(__file__).resolve().parents[1] / "motions" / "clips"


@pytest.fixture(scope="module")
def lib():
    from mimic_jax.motion.clip import load_clip
    from mimic_jax.motion.library import build_library

    names = ["walk_forward", "turn_left", "side_step", "squat"]
    return build_library([load_clip(CLIPS / f"{n}.npz") for n in names], names)


def test_protocols_are_seeded_and_follow_their_definitions():
    kicks = P.perturb(P.PerturbProtocol(), 4, seed=0).kicks
    assert kicks.shape == (4, 750, 3)
    hit = np.flatnonzero(np.abs(kicks).sum(axis=(0, 2)))
    assert hit.tolist() == list(range(50, 750, 50))  # every second, from 1 s
    speed = np.linalg.norm(kicks[:, hit], axis=-1)
    assert speed.max() <= 0.5 and np.all(kicks[..., 2] == 0)
    np.testing.assert_array_equal(kicks, P.perturb(P.PerturbProtocol(), 4, seed=0).kicks)
    assert not np.array_equal(kicks, P.perturb(P.PerturbProtocol(), 4, seed=1).kicks)
    joy = P.joystick(P.JoystickProtocol(), 2, seed=0)
    assert joy.steps == 600 and joy.segments.tolist() == [[0, 150], [150, 300], [300, 450], [450, 600]]
    np.testing.assert_allclose(joy.commands[1, 160], [-0.4, 0, 0])
    np.testing.assert_allclose(joy.commands[0, 599], [0, 0, -0.8])
    rnd = P.joystick(P.JoystickProtocol(sequence="random"), 3, seed=2)
    assert rnd.segment_commands.shape == (3, 5, 3) and rnd.commands.shape == (3, 750, 3)
    way = P.waypoint(P.WaypointProtocol(), 50, seed=0)
    dist = np.linalg.norm(way.goal, axis=-1)
    assert way.steps == 1000 and dist.min() >= 3.0 and dist.max() <= 8.0
    with pytest.raises(P.ProtocolError, match="unknown task 'dance'"):
        P.check_task("dance")


def test_obstacle_field_leaves_a_path_and_clear_ends():
    p = P.ObstacleProtocol()
    eps = P.obstacles(p, 3, seed=0)
    centre, radius = np.asarray(eps.obstacles.cylinder_center), np.asarray(eps.obstacles.cylinder_radius)
    assert centre.shape == (3, 15, 2)
    assert centre[..., 0].min() >= 1.0 and centre[..., 0].max() <= 9.0 and np.abs(centre[..., 1]).max() <= 4.5
    for n in range(3):
        gaps = np.linalg.norm(centre[n, :, None] - centre[n, None], axis=-1) - radius[n, :, None] - radius[n, None]
        assert gaps[~np.eye(15, dtype=bool)].min() >= p.gap - 1e-5
        S.validate(eps.goal[n], jax.tree.map(lambda x: x[n], eps.obstacles))
    with pytest.raises(P.ProtocolError, match="could not place 40 pillars"):
        P.obstacles(P.ObstacleProtocol(pillars=40, max_draws=2000), 1, seed=0)


def test_inpaint_keyframes_follow_the_joined_clips(lib):
    eps = P.inpaint(P.InpaintProtocol(), 2, seed=0, lib=lib)
    assert eps.steps == 599 and eps.motion_id.shape == (2, 3)
    assert all(len(set(row)) == 3 for row in eps.motion_id.tolist())  # three different clips
    np.testing.assert_array_equal(eps.keyframes.step[0], np.arange(50, 600, 50))
    # The first keyframe is the first clip 1 s after its start, where the library has it.
    m, f = int(eps.motion_id[0, 0]), int(eps.start_frame[0, 0])
    idx = int(lib.clip_start[m]) + f + 50
    np.testing.assert_allclose(eps.keyframes.world.body_pos_w[0, 0], np.asarray(lib.body_pos)[idx], atol=1e-6)
    with pytest.raises(P.ProtocolError, match="joins 5 clips"):
        P.inpaint(P.InpaintProtocol(clips=5), 1, seed=0, lib=lib)


def test_start_frame_geometry_moves_to_the_world():
    start = st.Frame(origin=np.array([[1.0, 2.0, 0.0]]), yaw=np.asarray(_yaw(np.pi / 2))[None])
    np.testing.assert_allclose(P.to_world(np.array([[3.0, 0.0]]), start), [[1.0, 5.0]], atol=1e-6)
    obs = jax.tree.map(lambda x: x[None], S.make_obstacles([(2.0, 0.0, 0.2, 2.0)], [(1, 0, 0.5, 1, 0.2, 0.5, 0.0)]))
    moved = P.obstacles_to_world(obs, start)
    np.testing.assert_allclose(moved.cylinder_center[0, 0], [1.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(moved.box_center[0, 0], [1.0, 3.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(moved.box_yaw[0, 0], np.pi / 2, atol=1e-6)


# -- metrics ------------------------------------------------------------------------------------------------------
def _track(pos, quat=None, lin=None, ang=None):
    """WorldStates [T, N, ...] from per-step root data [T, N, 3]: every body at the root."""
    pos = np.asarray(pos, np.float32)
    body = lambda x: np.repeat(np.asarray(x, np.float32)[:, :, None], st.NUM_BODIES, axis=2)  # noqa: E731
    quat = np.broadcast_to([1.0, 0, 0, 0], pos.shape[:2] + (4,)) if quat is None else quat
    zeros = np.zeros_like(pos)
    return st.WorldStates(body(pos), body(quat), body(zeros if lin is None else lin),
                          body(zeros if ang is None else ang), np.zeros(pos.shape[:2] + (29,)),
                          np.zeros(pos.shape[:2] + (29,)))


def test_intervals_hand_values():
    assert M.wilson(8, 10) == pytest.approx((0.8, 0.4902, 0.9433), abs=1e-4)
    assert M.wilson(0, 10)[2] == pytest.approx(1.96**2 / (10 + 1.96**2), abs=1e-4)  # 0/n: z^2 / (n + z^2)
    assert M.rate([True] * 10).low == pytest.approx(10 / (10 + M.Z95**2))
    fig = M.mean([1.0, 2.0, 3.0, np.nan], "m")
    assert (fig.value, fig.n) == (2.0, 3)
    assert fig.high - fig.value == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) sd / sqrt n


def test_falls_use_the_head_height():
    """Env 0 lies on its side at step 1 (torso at 0.1 m, head beside it), env 1 at step 2; standing, the head is
    0.43 m above the torso."""
    lying = np.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0])
    pos = np.array([[[0, 0, 0.8], [0, 0, 0.8]], [[0, 0, 0.1], [0, 0, 0.7]], [[0, 0, 0.8], [0, 0, 0.1]]])
    quat = np.broadcast_to([1.0, 0, 0, 0], (3, 2, 4)).copy()
    quat[1, 0] = quat[2, 1] = lying
    world = _track(pos, quat)
    np.testing.assert_allclose(M.head_height(world), [[1.23, 1.23], [0.1, 1.13], [1.23, 0.1]], atol=1e-6)
    fell, step = M.falls(world, np.ones((3, 2), bool))
    assert fell.tolist() == [True, True] and step.tolist() == [1, 2]
    standing = _track(np.full((3, 1, 3), [0, 0, 0.8]))
    valid = np.ones((3, 1), bool)
    assert M.falls(standing, valid)[0].tolist() == [False]
    valid[2] = False  # its physics went non-finite at step 2: that counts as a fall there
    assert M.falls(standing, valid)[1].tolist() == [2]


def test_joystick_error_in_the_heading_frame():
    """Facing +y, moving at 0.5 m/s along +y (0.5 forward) and turning at 0.6 rad/s; two 2-step segments."""
    t, n = 4, 1
    quat = np.broadcast_to(np.asarray(_yaw(np.pi / 2)), (t, n, 4))
    world = _track(np.zeros((t, n, 3)), quat, lin=np.tile([0, 0.5, 0], (t, n, 1)), ang=np.tile([0, 0, 0.6], (t, n, 1)))
    segments = np.array([[0, 2], [2, 4]])
    cmds = np.array([[[0.6, 0, 0], [0.5, 0, 0.8]]])
    err = M.joystick_errors(world, np.ones((t, n), bool), segments, cmds, window_s=0.04)
    np.testing.assert_allclose(err, [[100 * 0.1 / 0.6, 100 * 0.2 / 0.8]], rtol=1e-5)  # the worse of lin and yaw
    valid = np.ones((t, n), bool)
    valid[3] = False
    assert np.isnan(M.joystick_errors(world, valid, segments, cmds, window_s=0.04)[0, 1])


def test_reaching_collisions_and_keyframe_errors():
    # Walking along +x at 0.5 m/s, stopping at x = 3.9 from step 3: reached (within 0.3 m, slow) at step 3.
    x = np.array([2.9, 3.4, 3.9, 3.9, 3.9])
    vel = np.array([0.5, 0.5, 0.5, 0.0, 0.0])
    world = _track(np.stack([x, np.zeros(5), np.full(5, 0.8)], -1)[:, None],
                   lin=np.stack([vel, np.zeros(5), np.zeros(5)], -1)[:, None])
    hit, time = M.reached(world, np.ones((5, 1), bool), np.array([[4.0, 0.0]]))
    assert hit.tolist() == [True] and time[0] == pytest.approx(3 * 0.02)
    # A pillar of radius 0.2 at (3.4, 0.5): the root passes 0.3 m from its surface; the torso sphere (0.15)
    # clears it by 0.15 m, so no collision; 0.1 m from a surface it is 0.05 m inside.
    obs = jax.tree.map(lambda a: a[None], S.make_obstacles([(3.4, 0.5, 0.2, 2.0)]))
    assert M.clearance(world, obs)[1, 0] == pytest.approx(0.3 - 0.15, abs=1e-5)
    assert M.collided(world, np.ones((5, 1), bool), obs).tolist() == [False]
    closer = jax.tree.map(lambda a: a[None], S.make_obstacles([(3.4, 0.3, 0.2, 2.0)]))
    assert M.collided(world, np.ones((5, 1), bool), closer).tolist() == [True]
    # Keyframes at steps 1 and 9 (9 was never simulated): MJPE = MRPE = 0.1 m at step 1 (all bodies at the root).
    target = _track(np.array([[[3.4, 0.1, 0.8], [0, 0, 0]]]).transpose(1, 0, 2))
    keys = kf.Keyframes(step=np.array([[1, 9]]), world=st.WorldStates(*(np.swapaxes(a, 0, 1) for a in target)),
                        dims=kf.dims_mask("body_pos"))
    mjpe, mrpe = M.keyframe_errors(world, np.ones((5, 1), bool), keys)
    np.testing.assert_allclose(mjpe[0, 0], 0.1, atol=1e-6)
    np.testing.assert_allclose(mrpe[0, 0], 0.1, atol=1e-6)
    assert np.isnan(mjpe[0, 1])


# -- task plans ---------------------------------------------------------------------------------------------------
def _starts():
    """Episode 0 starts at the world origin facing +x, episode 1 at (1, 2) facing +y."""
    return st.Frame(origin=np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]]),
                    yaw=np.stack([np.asarray(_yaw(0.0)), np.asarray(_yaw(np.pi / 2))]))


def test_joystick_plan_follows_the_command_of_each_step_without_recompiling():
    plan = G.plan("joystick", P.joystick(P.JoystickProtocol(), 2, seed=0), _starts())
    traces = []

    @jax.jit
    def goal_at(p, step):
        traces.append(1)
        c = jax.vmap(G.step_costs, in_axes=(0, None))(p, step)
        return c.terms["velocity"].params.velocity, c.terms["yaw_rate"].params.rate, c.terms["yaw_rate"].weight

    v, w, weight = goal_at(plan, 10)
    np.testing.assert_allclose(v, [[0.6, 0.0]] * 2)
    v, w, _ = goal_at(plan, 460)
    np.testing.assert_allclose(v, [[0.0, 0.0]] * 2)
    np.testing.assert_allclose(w, [-0.8, -0.8])
    v, _, _ = goal_at(plan, 10_000)  # past the end: the last command holds
    assert len(traces) == 1 and weight.shape == (2,)
    assert G.GuidanceConfig().weight("joystick") == 0.1 and G.GuidanceConfig().weight("perturb") == 0.0


def test_goal_plans_are_in_the_world_and_cost_what_their_terms_cost():
    starts = _starts()
    way = P.waypoint(P.WaypointProtocol(), 2, seed=0)
    plan = G.plan("waypoint", way, starts)
    goal, none = G.scene_of(plan, 1)
    np.testing.assert_allclose(goal, P.to_world(way.goal, starts)[1], atol=1e-6)
    assert none is None
    x = jnp.stack([_states(pos=np.tile([0.0, 0.0, 0.8], (H + 1, 1)))] * 2)
    frames = st.Frame(jnp.asarray(starts.origin, jnp.float32), jnp.asarray(starts.yaw, jnp.float32))
    total = jax.jit(jax.vmap(lambda p, s, f: C.total(_inp(s, f), G.step_costs(p, 0))))(plan, x, frames)
    one = _value(C.waypoint, C.WaypointGoal(jnp.asarray(goal)), x[1], st.Frame(frames.origin[1], frames.yaw[1]))[0]
    np.testing.assert_allclose(total[1], one, rtol=1e-5)
    forest = G.plan("obstacles", P.obstacles(P.ObstacleProtocol(), 2, seed=0), starts)
    assert sorted(forest.costs.terms) == ["obstacles", "waypoint"]
    np.testing.assert_allclose(forest.costs.terms["waypoint"].weight, [0.175, 0.175])
    goal, obs = G.scene_of(forest, 1)
    assert obs.cylinder_center.shape == (15, 2)
    S.validate(goal, obs, start_xy=starts.origin[1, :2])
    assert G.plan("perturb", P.perturb(P.PerturbProtocol(), 2, seed=0), starts).costs.terms == {}


def test_inpaint_plan_moves_its_window_with_the_step(lib):
    eps = P.inpaint(P.InpaintProtocol(), 2, seed=0, lib=lib)
    plan = G.plan("inpaint", eps, _starts())
    one = G.row(plan, 0)
    frame = st.Frame(jnp.zeros(3), _yaw(0.0))
    clamp = jax.jit(G.step_clamp, static_argnums=3)(one, 48, frame, H)  # keyframe 50 is 2 steps ahead
    assert np.flatnonzero(np.asarray(clamp.mask)).tolist() == [1]  # s_{t+2}, the second predicted state
    whole = st.encode_step("body_pos", st.WorldStates(*(x[0] for x in one.keys.world)), frame)
    np.testing.assert_allclose(clamp.states[1], whole, atol=1e-5)  # every dim, velocities included
    assert int(G.step_costs(one, 48).terms["keyframe"].params.now) == 48
    no_clamp = G.plan("inpaint", eps, _starts(), G.GuidanceConfig(inpaint_clamp=False))
    assert G.step_clamp(G.row(no_clamp, 0), 48, frame, H) is None


# -- bench, play and the CLI (numpy only: a kinematic stand-in plays the episodes) ----------------------------------
def _kinematic(batch, weight: float):
    """A stand-in simulator: unguided it stands still; guided it follows the joystick command exactly, or walks
    straight to the goal at 0.5 m/s and stops there."""
    n, steps = batch.start.origin.shape[0], batch.steps
    pos, heading = np.zeros((steps + 1, n, 3)), np.zeros((steps + 1, n))
    pos[..., 2] = 0.8
    lin, ang = np.zeros_like(pos), np.zeros_like(pos)
    goal = np.asarray(batch.plan.costs.terms["waypoint"].params.position) if batch.task == "waypoint" else None
    for t in range(steps):
        if weight > 0 and batch.task == "joystick":
            vx, vy, wz = batch.episodes.commands[:, t].T
            c, s = np.cos(heading[t]), np.sin(heading[t])
            lin[t + 1, :, 0], lin[t + 1, :, 1], ang[t + 1, :, 2] = c * vx - s * vy, s * vx + c * vy, wz
            heading[t + 1] = heading[t] + wz * DT
        elif weight > 0:
            to_goal = goal - pos[t, :, :2]
            dist = np.linalg.norm(to_goal, axis=-1, keepdims=True)
            lin[t + 1, :, :2] = np.where(dist > 0.05, 0.5 * to_goal / np.maximum(dist, 1e-9), 0.0)
            heading[t + 1] = heading[t]
        pos[t + 1] = pos[t] + lin[t + 1] * DT
    quat = np.stack([np.cos(heading / 2), 0 * heading, 0 * heading, np.sin(heading / 2)], -1)
    return B.Recorded(world=_track(pos, quat, lin, ang), valid=np.ones((steps + 1, n), bool))


def test_bench_reports_baseline_and_sweep(tmp_path):
    cfg = B.BenchConfig(episodes=4, weight_multiples=(1.0,), waypoint=P.WaypointProtocol(seconds=18.0))
    start = st.Frame(origin=np.zeros((4, 3)), yaw=np.tile([1.0, 0, 0, 0], (4, 1)))
    report = B.run(["waypoint", "joystick/fixed"], _kinematic, cfg, start)
    way = report["waypoint"]["rows"]
    assert [r["weight"] for r in way] == [0.0, 0.2]
    assert way[0]["figures"]["success"]["value"] == 0.0 and way[1]["figures"]["success"]["value"] == 1.0
    assert way[1]["figures"]["success"]["low"] == pytest.approx(4 / (4 + M.Z95**2))  # Wilson, 4 of 4
    assert way[1]["figures"]["time_s"]["value"] <= 18.0 and way[1]["figures"]["falls"]["value"] == 0.0
    joy = report["joystick/fixed"]["rows"]
    assert joy[1]["figures"]["velocity_error_pct"]["value"] == pytest.approx(0.0, abs=1e-3)
    assert joy[1]["figures"]["success"]["value"] == 1.0
    assert joy[0]["figures"]["velocity_error_pct"]["value"] == pytest.approx(100.0, rel=1e-6)  # stood still
    table = B.format_table(report)
    assert "(unguided)" in table and "anchor success: published BeyondMimic 80%" in table
    path = B.write_json({"tasks": report}, tmp_path / "bench.json")
    assert json.loads(path.read_text())["tasks"]["waypoint"]["protocol"]["distance"] == [3.0, 8.0]
    assert [p.name for p in B.plot(report, tmp_path / "plots")] == ["waypoint.png", "joystick_fixed.png"]


def test_command_files_and_keyboard(tmp_path):
    path = tmp_path / "walk.yaml"
    path.write_text("- {seconds: 0.1, vx: 0.6}\n- {seconds: 0.04, yaw_rate: -0.8}\n")
    cmds = PL.load_commands(path)
    assert cmds.shape == (7, 3)
    np.testing.assert_allclose(cmds[4], [0.6, 0, 0])
    np.testing.assert_allclose(cmds[6], [0, 0, -0.8])
    for text, message in (("- {seconds: 1, speed: 2}\n", "only vx, vy, yaw_rate"), ("[]\n", "non-empty list"),
                          ("- {seconds: 0}\n", "at least one control step"), ("- {seconds: 1, vx: .nan}\n",
                                                                              "not a finite number")):
        path.write_text(text)
        with pytest.raises(PL.CommandError, match=message):
            PL.load_commands(path)
    cmd = np.zeros(3)
    for key in ("up", "up", "left", "comma"):
        cmd = PL.apply_key(cmd, PL.GLFW[key])
    np.testing.assert_allclose(cmd, [0.2, 0.1, 0.2], atol=1e-6)
    for _ in range(20):
        cmd = PL.apply_key(cmd, PL.GLFW["down"])
    assert cmd[0] == pytest.approx(-0.6)  # clamped
    np.testing.assert_array_equal(PL.apply_key(cmd, 65), cmd)  # other keys: no change
    np.testing.assert_array_equal(PL.apply_key(cmd, PL.GLFW["backspace"]), np.zeros(3))


def _card(tmp_path, name, **card):
    model = tmp_path / name
    model.mkdir()
    (model / "card.json").write_text(json.dumps(card))
    return model


def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    from mimic_jax.control.__main__ import main

    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps({"goal": [3.0, 0.0], "cylinders": [{"center": [3.0, 0.1], "radius": 0.3}]}))
    model = _card(tmp_path, "joint", layout="joint_pos", state_size=67)
    cases = {
        ("play", "--task", "dance", "--preview", "--video", "a.mp4"): "unknown task 'dance'",
        ("bench", "--task", "all", "--model", str(tmp_path / "none")): "no such model directory",
        ("play", "--task", "obstacles", "--preview", "--scene", str(scene), "--video", "a.mp4"):
            "the goal (3.00, 0.00) is inside cylinder 0",
        ("bench", "--task", "joystick", "--model", str(model), "--layout", "body_pos"):
            "trained on the joint_pos state layout, not body_pos",
        ("bench", "--task", "joystick", "--model", str(_card(tmp_path, "mixed", layout="body_pos", state_size=67))):
            "the model was trained on another state layout",
        ("bench", "--task", "waypoint", "--model", str(model), "--weights", "1,-2"): "--weights must be positive",
        ("play", "--task", "joystick", "--model", str(model), "--keyboard"): "--keyboard needs a display",
        ("bench", "--task", "waypoint", "--model", str(_card(tmp_path, "card-only", layout="body_pos"))):
            "a card.json alone is no model",
        ("bench", "--task", "waypoint", "--model", str(model), "--seconds", "0"): "--seconds must be in (0, 600]",
    }
    for argv, message in cases.items():
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)


def test_preview_draws_the_scene(tmp_path):
    """The obstacle scene drawn into MuJoCo's scene (15 pillars, goal disc and pole) and written as a PNG."""
    from mimic_jax.control import draw
    from mimic_jax.control.__main__ import main
    from mimic_jax.motion.viz import RenderError, ensure_gl

    try:
        ensure_gl()
    except RenderError as exc:
        pytest.skip(str(exc))
    video = PL.preview("obstacles", seconds=0.02)
    drawer = draw._Drawer(64, 48)
    try:
        drawer.image(video, 0, "overview")
        bare = drawer.renderer.scene.ngeom
        drawer.renderer.update_scene(drawer.robot, drawer.camera, drawer.option)
        assert bare - drawer.renderer.scene.ngeom == 15 + 2 + 1  # pillars, goal disc + pole, one path dot
    finally:
        drawer.close()
    out = tmp_path / "forest.png"
    assert main(["play", "--task", "obstacles", "--preview", "--still", str(out), "--video-size", "64x48"]) == 0
    from PIL import Image

    assert Image.open(out).size == (64, 48)


def test_model_layout_checks_both_card_forms():
    from mimic_jax.control.model import ModelError, check_layout, layout_of

    assert layout_of({"layout": "joint_pos"}) == "joint_pos"
    stored = {"layout": {"name": "body_pos", "size": 87, "parts": [list(p) for p in st.BODY_POS.parts]}}
    assert check_layout(stored, "body_pos") == "body_pos"
    other = {"layout": {"name": "body_pos", "size": 87, "parts": [["root_pos", 3], ["rest", 84]]}}
    with pytest.raises(ModelError, match="trained on another state layout"):
        layout_of(other)
    with pytest.raises(ModelError, match="unknown state layout 'quat_pos'"):
        layout_of({"layout": "quat_pos"})
    with pytest.raises(ModelError, match="no 'layout'"):
        layout_of({})


def test_episode_video_carries_the_task(lib):
    cfg = B.BenchConfig(joystick=P.JoystickProtocol(segment_s=0.1))
    start = st.Frame(origin=np.zeros((2, 3)), yaw=np.tile([1.0, 0, 0, 0], (2, 1)))
    batch = B.make_batch("joystick/fixed", cfg, start)
    video = PL.episode_video(batch, _kinematic(batch, 1.0), 1)
    assert video.qpos.shape == (batch.steps + 1, 36) and len(video.captions) == batch.steps + 1
    assert video.captions[0].startswith("command: vx +0.60")
    inpaint = B.make_batch("inpaint", cfg, start, lib)
    rec = B.Recorded(world=st.WorldStates(*(np.repeat(np.asarray(x)[:, None], 2, axis=1) for x in _track(
        np.zeros((inpaint.steps + 1, 1, 3))))), valid=np.ones((inpaint.steps + 1, 2), bool))
    video = PL.episode_video(inpaint, rec, 0)
    keys = inpaint.episodes.keyframes
    np.testing.assert_allclose(video.ghost_qpos[49, :3], np.asarray(keys.world.body_pos_w)[0, 0, 0])  # next: 50
    np.testing.assert_allclose(video.ghost_qpos[50, :3], np.asarray(keys.world.body_pos_w)[0, 1, 0])  # then 100


# -- the guided controller on a tiny random model (one sampler program, one MJX program) ---------------------------
TINY_MOTIONS = ("walk_forward", "turn_left")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A diffusion run directory holding a tiny randomly initialised model (weights jittered so that the network's
    output depends on its input; heads start at zero otherwise), normalized on the clips' reference states."""
    import dataclasses

    from mimic_jax.diffusion import checkpoint as ckpt
    from mimic_jax.diffusion.config import Config, ModelConfig
    from mimic_jax.diffusion.learner import init_state
    from mimic_jax.diffusion.normalize import fit_normalizer
    from mimic_jax.motion.clip import load_clip
    from mimic_jax.motion.library import build_library

    lib = build_library([load_clip(CLIPS / f"{n}.npz") for n in TINY_MOTIONS], TINY_MOTIONS)
    # Two layers: with one, a_t reads only the clamped history and guidance on the states cannot change it.
    cfg = Config(model=ModelConfig(layers=2, width=32, heads=2, horizon=8, action_loss_steps=4, attention_dropout=0.0))
    ws = st.WorldStates(*(jnp.asarray(x)[None] for x in (lib.body_pos, lib.body_quat, lib.body_lin_vel,
                                                          lib.body_ang_vel, lib.joint_pos, lib.joint_vel)))
    first = st.frame_at(st.WorldStates(*(x[0] for x in ws)), 0)
    states = st.encode(st.BODY_POS, ws, st.Frame(first.origin[None], first.yaw[None]))
    table = g1.joint_table()
    labels = (np.asarray(lib.joint_pos) - table.default_pos) / table.action_scale
    norm = fit_normalizer(states, labels[None], st.BODY_POS.global_mask, emphasis=cfg.diffusion.emphasis,
                          std_floor=cfg.diffusion.std_floor)
    state = init_state(cfg, jax.random.PRNGKey(0))
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(tree, [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    state = dataclasses.replace(state, params=params, ema=params) if dataclasses.is_dataclass(state) else \
        state._replace(params=params, ema=params)
    run = tmp_path_factory.mktemp("control") / "tiny-run"
    ckpt.save(run, state, norm, cfg, {"preset": "test"}, keep=1)
    return run, lib


def _robot_obs(lib, frames):
    """The runner's observation of robots standing exactly at the library's reference ``frames`` of clip 0."""
    from mimic_jax.envs.robot import RobotState

    ref = lib.frame(jnp.zeros(len(frames), jnp.int32), jnp.asarray(frames))
    zeros = jnp.zeros((len(frames), 3))
    robot = RobotState(body_pos=ref.body_pos, body_quat=ref.body_quat, body_lin_vel=ref.body_lin_vel,
                       body_ang_vel=ref.body_ang_vel, joint_pos=ref.joint_pos, joint_vel=ref.joint_vel,
                       root_lin_vel_b=zeros, root_ang_vel_b=zeros)
    return {"robot": robot, "step": jnp.zeros(len(frames), jnp.int32)}


def test_guidance_pulls_the_planned_path_to_the_waypoint(tiny_run):
    """One replan of two robots from the same history and key: with the waypoint task's default weight every
    planned root position ends nearer its goal (3-8 m away) than unguided (weight 0)."""
    from mimic_jax.control.simulate import GuidedController, controller_step, start_frames
    from mimic_jax.diffusion.checkpoint import load_model

    run, lib = tiny_run
    model, _ = load_model(run)
    frames = np.array([0, 40], np.int32)
    start = jax.tree.map(np.asarray, start_frames(lib, np.zeros(2, np.int32), frames))
    batch = B.make_batch("waypoint", B.BenchConfig(episodes=2), start)
    obs = _robot_obs(lib, frames)
    step = lambda policy, carry, key: controller_step(policy, carry, obs, key)  # noqa: E731
    dist, actions = {}, {}
    for w in (0.0, G.GuidanceConfig().waypoint_weight):
        policy = GuidedController(model=model, plan=batch.plan, weight=jnp.float32(w))
        actions[w], carry = step(policy, policy.init(2, jax.random.PRNGKey(0)), jax.random.PRNGKey(0))
        assert actions[w].shape == (2, 29) and np.all(np.isfinite(actions[w]))
        goal = np.asarray(batch.plan.costs.terms["waypoint"].params.position)
        dist[w] = np.linalg.norm(np.asarray(carry.plan_root)[:, 1:, :2] - goal[:, None], axis=-1)  # [2, H]
    assert controller_step._cache_size() == 1  # a new weight: the same program
    guided, free = dist[G.GuidanceConfig().waypoint_weight], dist[0.0]
    assert np.all(guided < free), (guided, free)
    assert not np.allclose(actions[0.0], actions[G.GuidanceConfig().waypoint_weight])  # a_t follows the plan


@pytest.fixture(scope="module")
def simulated(tiny_run):
    """The MJX simulator on a 2-episode waypoint batch cut at 0.1 s (5 control steps), weights 0 and 0.2."""
    from mimic_jax.control.simulate import MJXSimulator
    from mimic_jax.diffusion.checkpoint import load_model

    run, lib = tiny_run
    sim = MJXSimulator(load_model(run)[0], lib)
    cfg = B.BenchConfig(episodes=2, max_seconds=0.1)
    batch = B.make_batch("waypoint", cfg, sim.starts(2), lib)
    return sim, batch, {w: sim(batch, w) for w in (0.0, 0.2)}


def test_mjx_simulator_records_the_episodes_from_their_starts(simulated):
    from mimic_jax.envs import episodes as runner

    sim, batch, recs = simulated
    rec = recs[0.2]
    assert batch.steps == 5 and rec.world.body_pos_w.shape == (6, 2, 14, 3) and rec.valid.shape == (6, 2)
    assert rec.valid.all() and np.all(np.isfinite(rec.world.body_pos_w))
    assert sim.plans.shape == (6, 2, 9, 3)
    # Step 0 is the robot at its start frame: clip e mod 2, frame 0, exactly (evaluation config: no reset noise).
    ref = sim.lib.frame(jnp.array([0, 1]), jnp.zeros(2, jnp.int32))
    np.testing.assert_allclose(rec.world.body_pos_w[0], ref.body_pos, atol=1e-5)
    np.testing.assert_allclose(sim.starts(2).origin[:, :2], np.asarray(ref.body_pos)[:, 0, :2], atol=1e-6)
    assert not np.allclose(rec.world.body_pos_w[-1], rec.world.body_pos_w[0])  # the physics ran
    assert not np.allclose(recs[0.0].world.joint_pos[-1], rec.world.joint_pos[-1])  # the weight changed the actions
    program = runner._program(sim.env, 6, runner_record(), sim.observe, False)
    assert program._cache_size() == 1  # both weights: one MJX program


def test_mujoco_c_simulator_plays_the_same_batch(tiny_run, simulated):
    """The same batch on MuJoCo C (the jitted controller step of the guidance test: no new trace): the same
    start, the same recorded shapes, and over 0.1 s the same motion to within 1 cm (engines differ)."""
    from mimic_jax.control.simulate import MuJoCoSimulator

    sim, batch, recs = simulated
    c_sim = MuJoCoSimulator(sim.model, sim.lib)
    rec = c_sim(batch, 0.2)
    assert rec.world.body_pos_w.shape == (6, 2, 14, 3) and rec.valid.all() and c_sim.plans.shape == (6, 2, 9, 3)
    np.testing.assert_allclose(rec.world.body_pos_w[0], recs[0.2].world.body_pos_w[0], atol=1e-5)
    moved = np.abs(recs[0.2].world.body_pos_w[-1] - recs[0.2].world.body_pos_w[0]).max()
    gap = np.abs(rec.world.body_pos_w[-1] - recs[0.2].world.body_pos_w[-1]).max()
    assert gap < 0.01 and moved > 2 * gap, (gap, moved)


def runner_record():
    from mimic_jax.control.simulate import record_step

    return record_step


def test_cli_bench_writes_every_figure_and_the_unguided_row(tiny_run, simulated, tmp_path, capsys):
    """``bench`` end to end on the simulator's program (same model, clips, episode count and length)."""
    from mimic_jax.control.__main__ import main
    from mimic_jax.envs import episodes as runner

    run, _ = tiny_run
    sim, _, _ = simulated
    clips = ",".join(str(CLIPS / f"{n}.npz") for n in TINY_MOTIONS)
    out = tmp_path / "bench.json"
    argv = ["bench", "--task", "waypoint", "--model", str(run), "--motion-set", clips, "--episodes", "2",
            "--seconds", "0.1", "--weights", "1,2", "--json", str(out), "--plots", str(tmp_path / "plots"), "--sim2sim"]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "waypoint  (n = 2 episodes)" in printed and "(unguided)" in printed
    doc = json.loads(out.read_text())
    rows = doc["tasks"]["waypoint"]["rows"]
    assert [r["weight"] for r in rows] == pytest.approx([0.0, 0.2, 0.4])
    for row in rows:
        assert set(row["figures"]) == {"success", "time_s", "falls"}
        assert row["figures"]["falls"]["n"] == 2 and row["figures"]["falls"]["value"] == 0.0
    assert doc["tasks"]["waypoint"]["steps"] == 5 and doc["episodes"] == 2 and doc["max_seconds"] == 0.1
    assert (tmp_path / "plots" / "waypoint.png").is_file()
    c_rows = doc["sim2sim"]["tasks"]["waypoint"]["rows"]
    assert doc["sim2sim"]["simulator"] == "MuJoCo C" and [r["weight"] for r in c_rows] == pytest.approx([0, 0.2, 0.4])
    assert runner._program(sim.env, 6, runner_record(), sim.observe, False)._cache_size() == 1  # nothing recompiled


def test_cli_refuses_a_run_of_another_layout_in_one_line(tiny_run, tmp_path, capsys):
    import shutil

    from mimic_jax.control.__main__ import main

    run, _ = tiny_run
    other = tmp_path / "other-run"
    shutil.copytree(run, other)
    metas = list(other.glob("checkpoints/*/meta/metadata"))  # Orbax's JSON of the meta item
    assert metas, list(other.rglob("*"))
    for path in metas:
        meta = json.loads(path.read_text())
        meta["layout"]["parts"] = [["root_pos", 3], ["rest", 84]]
        path.write_text(json.dumps(meta))
    cases = {(str(run), "--layout", "joint_pos"): "trained on the body_pos state layout, not joint_pos",
             (str(other),): "the model was trained on another state layout"}
    for extra, message in cases.items():
        assert main(["bench", "--task", "waypoint", "--model", extra[0], *extra[1:]]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_cli_play_writes_the_episode_with_its_task(tiny_run, tmp_path, capsys):
    """``play`` of one waypoint episode (0.1 s; its own MJX program: one robot) as a PNG still."""
    from mimic_jax.control.__main__ import main
    from mimic_jax.motion.viz import RenderError, ensure_gl

    try:
        ensure_gl()
    except RenderError as exc:
        pytest.skip(str(exc))
    run, _ = tiny_run
    clips = ",".join(str(CLIPS / f"{n}.npz") for n in TINY_MOTIONS)
    out = tmp_path / "goal.png"
    argv = ["play", "--task", "waypoint", "--model", str(run), "--motion-set", clips, "--seconds", "0.1",
            "--still", str(out), "--still-at", "0.06", "--video-size", "64x48"]
    assert main(argv) == 0, capsys.readouterr().err
    from PIL import Image

    assert Image.open(out).size == (64, 48) and f"wrote {out}" in capsys.readouterr().out
