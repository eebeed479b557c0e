"""Loader for our G1 model and the name tables everything else uses.

Orders:
- ``JOINT_NAMES``: the 29 actuated joints in MuJoCo (depth-first) order. This is also the Unitree order
  used by the LAFAN1-retargeted CSV files (left leg, right leg, waist yaw/roll/pitch, left arm, right arm).
- ``ISAAC_JOINT_NAMES`` / ``ISAAC_BODY_NAMES``: breadth-first order, as Isaac Lab exports them.
- ``BODY_NAMES``: the 30 robot bodies in MuJoCo order (world excluded); body index i here is MuJoCo
  body id i + 1.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from mimic_jax.assets.build_g1 import (FACTS_PATH, FLOOR_BIT, FOOT_GEOM, KNEES_BENT, KNEES_BENT_Z, SCENE_XML,
                                       load_facts, motor_table)

if TYPE_CHECKING:  # MuJoCo is imported where a model is loaded: the name tables (and the diffusion model,
    import mujoco  # which uses only them) work without it

_FACTS = load_facts(FACTS_PATH)

JOINT_NAMES: tuple[str, ...] = tuple(j["name"] for j in _FACTS["joints"][1:])
BODY_NAMES: tuple[str, ...] = tuple(b["name"] for b in _FACTS["bodies"])
UNITREE_JOINT_NAMES: tuple[str, ...] = JOINT_NAMES
TRACKED_BODY_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip_roll_link", "left_knee_link", "left_ankle_roll_link",
    "right_hip_roll_link", "right_knee_link", "right_ankle_roll_link", "torso_link",
    "left_shoulder_roll_link", "left_elbow_link", "left_wrist_yaw_link",
    "right_shoulder_roll_link", "right_elbow_link", "right_wrist_yaw_link",
)
ANCHOR_BODY = "torso_link"
END_EFFECTOR_NAMES: tuple[str, ...] = (
    "left_ankle_roll_link", "right_ankle_roll_link", "left_wrist_yaw_link", "right_wrist_yaw_link")
# Bodies allowed to touch the ground without the undesired-contact penalty.
ALLOWED_CONTACT_BODIES = END_EFFECTOR_NAMES
NUM_JOINTS = len(JOINT_NAMES)


def _breadth_first(facts: dict) -> tuple[str, ...]:
    children: dict[str, list[str]] = {}
    for body in facts["bodies"]:
        children.setdefault(body["parent"], []).append(body["name"])
    queue, order = deque(children["world"]), []
    while queue:
        name = queue.popleft()
        order.append(name)
        queue.extend(children.get(name, []))
    return tuple(order)


ISAAC_BODY_NAMES: tuple[str, ...] = _breadth_first(_FACTS)
_JOINT_OF_BODY = {j["body"]: j["name"] for j in _FACTS["joints"][1:]}
ISAAC_JOINT_NAMES: tuple[str, ...] = tuple(_JOINT_OF_BODY[b] for b in ISAAC_BODY_NAMES if b in _JOINT_OF_BODY)


@dataclasses.dataclass(frozen=True)
class JointTable:
    """Per-joint arrays in ``JOINT_NAMES`` order."""

    kp: np.ndarray
    kd: np.ndarray
    effort: np.ndarray
    velocity_limit: np.ndarray  # rad/s, of the joint's motor class
    armature: np.ndarray
    action_scale: np.ndarray
    motor_class: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    default_pos: np.ndarray  # the "knees bent" pose


def _pose(patterns: dict[str, float]) -> np.ndarray:
    import re

    out = np.zeros(NUM_JOINTS)
    for i, name in enumerate(JOINT_NAMES):
        for pattern, value in patterns.items():
            if re.fullmatch(pattern, name):
                out[i] = value
                break
    return out


@functools.cache
def joint_table() -> JointTable:
    motors = motor_table(_FACTS)
    ranges = np.array([j["range"] for j in _FACTS["joints"][1:]])
    col = lambda key: np.array([motors[n][key] for n in JOINT_NAMES])  # noqa: E731
    return JointTable(kp=col("kp"), kd=col("kd"), effort=col("effort"), velocity_limit=col("velocity_limit"),
                      armature=col("armature"),
                      action_scale=col("action_scale"), motor_class=tuple(motors[n]["class"] for n in JOINT_NAMES),
                      lower=ranges[:, 0], upper=ranges[:, 1], default_pos=_pose(KNEES_BENT))


DEFAULT_ROOT_HEIGHT = KNEES_BENT_Z


COLLISION_MODES = ("self", "floor", "feet")


def load_model(*, collisions: str = "self") -> mujoco.MjModel:
    """The G1 on a floor.

    ``collisions``: ``"self"`` (the file's setting) collides every robot collision geom with the floor and
    the robot with itself (the pairs of ``build_g1.SELF_COLLISION_PAIRS``); ``"floor"`` keeps only the
    robot-floor pairs; ``"feet"`` keeps only the foot capsules, against the floor (fewest contacts).
    """
    if collisions not in COLLISION_MODES:
        raise ValueError(f"collisions must be one of {', '.join(COLLISION_MODES)}, not {collisions!r}")
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
    for g in range(model.ngeom):
        name = model.geom(g).name
        if not model.geom_contype[g] or name == "floor" or collisions == "self":
            continue
        keep = collisions == "floor" or FOOT_GEOM.match(name)
        model.geom_contype[g] = model.geom_contype[g] if keep else 0
        model.geom_conaffinity[g] = FLOOR_BIT if keep else 0
    return model


def body_ids(model: mujoco.MjModel, names) -> np.ndarray:
    import mujoco

    return np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in names], dtype=np.int32)


def qpos_from(root_pos: np.ndarray, root_quat_wxyz: np.ndarray, joint_pos: np.ndarray) -> np.ndarray:
    """Full qpos [..., 36] from root position, root quaternion (w, x, y, z) and joints in our order."""
    return np.concatenate([root_pos, root_quat_wxyz, joint_pos], axis=-1)
