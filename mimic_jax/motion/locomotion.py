"""Locomotion patterns for the synthesized clips: standing, walking, turning and side steps.

Shared by every clip: ``standing()`` (the default "knees bent" pose with flat feet on the floor),
``stand_targets`` (IK targets that hold it), and ``walk_targets`` which builds a footstep plan
(``gait.body_path_steps``), swing-foot trajectories with a toe-off (``gait.foot_plan``), a COM plan from the
linear inverted pendulum (``gait.zmp_reference`` + ``gait.lipm_com``) and an arm swing opposite to the legs.
"""

from __future__ import annotations

import dataclasses
import functools

import mujoco
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion import gait
from mimic_jax.motion.clip import CLIP_FPS
from mimic_jax.motion.ik import Targets, WholeBodyIK

DT = 1.0 / CLIP_FPS
T_STAND = 1.2  # seconds of standing before the weight starts to move
T_REST = 1.0  # the body does not move at all before this time (s)
J = {name: i for i, name in enumerate(g1.JOINT_NAMES)}


@dataclasses.dataclass(frozen=True)
class Standing:
    """The default pose with flat feet on the floor: sole-centre xy [2, 2], COM height, pelvis height."""

    feet_xy: np.ndarray
    com_z: float
    pelvis_z: float

    @property
    def half_width(self) -> float:
        return float(self.feet_xy[0, 1] - self.feet_xy[1, 1]) / 2.0

    @property
    def centre(self) -> np.ndarray:
        return self.feet_xy.mean(axis=0)


@functools.cache
def standing() -> Standing:
    model = g1.load_model()
    data = mujoco.MjData(model)
    data.qpos[:] = g1.qpos_from(np.array([0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT]), np.array([1.0, 0.0, 0.0, 0.0]),
                                g1.joint_table().default_pos)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    feet = np.array([data.site(s).xpos for s in ("left_foot", "right_foot")])
    sole = feet[:, 2].mean() + 0.002  # the sites sit 2 mm below the sole
    feet_xy = np.round(feet[:, :2], 4)
    pelvis_z = round(float(g1.DEFAULT_ROOT_HEIGHT - sole), 4)
    return Standing(feet_xy=feet_xy, com_z=_standing_com_height(model, feet_xy, pelvis_z), pelvis_z=pelvis_z)


def _standing_com_height(model, feet_xy: np.ndarray, pelvis_z: float) -> float:
    """COM height of the IK's standing pose (pelvis height task), so that holding the COM height instead of the
    pelvis height (walks) gives the very same standing pose (the rounded feet places move it off the keyframe)."""
    pos = np.zeros((1, 2, 3))
    pos[0, :, :2] = feet_xy
    tg = Targets(foot_pos=pos, foot_yaw=np.zeros((1, 2)), com_xy=feet_xy.mean(axis=0)[None],
                 pelvis_z=np.array([pelvis_z]), pelvis_rpy=np.zeros((1, 3)), torso_rpy=np.zeros((1, 3)),
                 posture=g1.joint_table().default_pos[None])
    ik = WholeBodyIK(model)
    ik.data.qpos[:] = ik.solve(tg)[0]
    mujoco.mj_kinematics(model, ik.data)
    mujoco.mj_comPos(model, ik.data)
    return round(float(ik.data.subtree_com[1, 2]), 6)


def time_grid(duration: float) -> np.ndarray:
    return np.arange(int(round(duration * CLIP_FPS)) + 1) * DT


def stand_targets(t: np.ndarray) -> Targets:
    """Standing still in the default pose for every frame of ``t``; clips edit a copy of this."""
    st, n = standing(), t.shape[0]
    pos = np.zeros((n, 2, 3))
    pos[:, :, :2] = st.feet_xy
    return Targets(foot_pos=pos, foot_yaw=np.zeros((n, 2)), com_xy=np.tile(st.centre, (n, 1)),
                   pelvis_z=np.full(n, st.pelvis_z), pelvis_rpy=np.zeros((n, 3)), torso_rpy=np.zeros((n, 3)),
                   posture=np.tile(g1.joint_table().default_pos, (n, 1)))


def add_arm_swing(tg: Targets, swing: np.ndarray) -> None:
    """Shoulder pitch offsets [T, 2] with a matching elbow bend (arms swing from the shoulder)."""
    for s, side in enumerate(("left", "right")):
        tg.posture[:, J[f"{side}_shoulder_pitch_joint"]] += swing[:, s]
        back = swing[:, s]  # smooth version of 0.3 * max(-back, 0): the elbow bends as the arm swings forward
        tg.posture[:, J[f"{side}_elbow_joint"]] += 0.15 * (np.sqrt(back * back + 0.05**2) - 0.05 - back)


@dataclasses.dataclass(frozen=True)
class Walk:
    """A stepping pattern: ``deltas`` are the body displacements (dx, dy, dyaw) per step in its own frame."""

    deltas: tuple[tuple[float, float, float], ...]
    period: float = 0.5  # s per step
    double_support: float = 0.12  # s with both feet on the floor between steps
    pelvis_drop: float = 0.02  # m the body lowers while walking (the COM height if ``com_height``)
    height: float = 0.06  # m swing-foot clearance
    toe_down: float = 0.3  # rad toes-down pitch of the swing foot (0: the foot stays flat)
    heel_off: float = 0.0  # s before lift-off when the heel starts to rise (0: no toe-off, pitch in the air)
    inward: float = 0.0  # m the swing foot moves towards the other one mid-swing
    zmp_roll: float = 0.0  # m the ZMP rolls towards the stance toe during single support
    com_height: bool = True  # IK holds the COM height (drops with ``pelvis_drop``), else the pelvis height
    pattern: str = "alternate"
    lead: int = gait.LEFT
    arm_gain: float = 0.8
    lean: float = 0.0  # torso pitch while walking (rad)
    shift: float = 0.4  # weight shift before the first and after the last step (s)
    t_end: float = 1.0  # standing after the weight is back in the middle (s)


def repeat(delta, n: int, ramp: int = 0) -> tuple:
    """``n`` copies of ``delta``; the first and last ``ramp`` are shortened (speed up, slow down)."""
    scale = [min(1.0, (k + 1) / (ramp + 1), (n - k) / (ramp + 1)) for k in range(n)]
    return tuple(tuple(float(a * x) for x in delta) for a in scale)


def walk_targets(w: Walk) -> Targets:
    st = standing()
    steps, t_last = gait.body_path_steps(T_STAND + w.shift, w.deltas, w.period, w.double_support,
                                         st.half_width, w.lead, w.pattern)
    # the body path is relative to the feet centre, steps are relative to it too
    steps = [dataclasses.replace(s, xy=(s.xy[0] + st.centre[0], s.xy[1] + st.centre[1])) for s in steps]
    t = time_grid(t_last + w.shift + w.t_end)
    tg = stand_targets(t)
    plan = gait.foot_plan(t, st.feet_xy, (0.0, 0.0), steps, w.height, w.toe_down, w.heel_off, w.inward)
    tg.foot_pos, tg.foot_yaw, tg.foot_pitch = plan.pos, plan.yaw, plan.pitch
    zmp = gait.zmp_reference(t, plan, steps, T_STAND, w.shift, w.zmp_roll)
    tg.com_xy = gait.lipm_com(zmp, st.com_z - w.pelvis_drop, DT, rest=(T_REST, w.t_end / 2))
    moving = gait.window(t, T_STAND, t_last + w.shift, w.shift)
    tg.pelvis_z = st.pelvis_z - w.pelvis_drop * moving
    if w.com_height:  # constant COM height while walking, as the LIPM assumes
        tg.com_z = st.com_z - w.pelvis_drop * moving
    heading = plan.yaw.mean(axis=1)
    tg.pelvis_rpy[:, 2] = heading
    tg.torso_rpy[:, 1] = w.lean * moving
    tg.torso_rpy[:, 2] = heading
    add_arm_swing(tg, gait.arm_swing(plan, heading, w.arm_gain))
    return tg


def stand_sway_targets() -> Targets:
    """Standing with the weight swaying side to side and back and forth, a slow dip, torso and arms moving."""
    t = time_grid(10.0)
    tg = stand_targets(t)
    env = gait.window(t, T_STAND - 0.2, 9.0, 1.5)
    phase = 2.0 * np.pi * (t - T_STAND + 0.2)
    tg.com_xy[:, 1] += env * 0.06 * np.sin(phase / 3.2)
    tg.com_xy[:, 0] += env * 0.025 * np.sin(phase / 4.1)
    tg.pelvis_z -= env * 0.04 * (0.5 - 0.5 * np.cos(phase / 3.9))
    tg.torso_rpy[:, 2] = env * 0.25 * np.sin(phase / 5.3)
    tg.pelvis_rpy[:, 0] = env * 0.04 * np.sin(phase / 3.2)
    for s, side in enumerate(("left", "right")):
        sign = 1.0 if s == 0 else -1.0
        tg.posture[:, J[f"{side}_shoulder_pitch_joint"]] += env * 0.25 * np.sin(phase / 5.3 + s * np.pi)
        tg.posture[:, J[f"{side}_shoulder_roll_joint"]] += sign * env * 0.12 * (0.5 - 0.5 * np.cos(phase / 3.2))
        tg.posture[:, J[f"{side}_elbow_joint"]] += env * 0.2 * np.sin(phase / 4.1)
    return tg
