"""What the environment reads off MJX data: the tracked bodies, joints, pelvis velocities and contact forces."""

from __future__ import annotations

import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from mimic_jax import math as jm
from mimic_jax.assets import g1


@struct.dataclass
class RobotState:
    body_pos: jnp.ndarray  # [14, 3] world
    body_quat: jnp.ndarray  # [14, 4] world
    body_lin_vel: jnp.ndarray  # [14, 3] world, at the body origin
    body_ang_vel: jnp.ndarray  # [14, 3] world
    joint_pos: jnp.ndarray  # [29]
    joint_vel: jnp.ndarray  # [29]
    root_lin_vel_b: jnp.ndarray  # [3] pelvis frame
    root_ang_vel_b: jnp.ndarray  # [3] pelvis frame


# Bodies touching anything (floor or robot) with a net contact force above this count as undesired
# contacts (the public figure, 1 N).
CONTACT_FORCE_THRESHOLD = 1.0
# Sensors for which MuJoCo (C, MJX-JAX and MJX-Warp alike) runs its post-constraint pass, which fills
# ``cfrc_ext`` with the contact forces on every body.
_POST_CONSTRAINT_SENSORS = (mujoco.mjtSensor.mjSENS_ACCELEROMETER, mujoco.mjtSensor.mjSENS_FORCE,
                            mujoco.mjtSensor.mjSENS_TORQUE, mujoco.mjtSensor.mjSENS_FRAMELINACC,
                            mujoco.mjtSensor.mjSENS_FRAMEANGACC)


def penalised_bodies(model: mujoco.MjModel) -> np.ndarray:
    """Ids of the robot bodies whose contacts are undesired: all but ``g1.ALLOWED_CONTACT_BODIES``.

    Raises if the model would not compute contact forces (``cfrc_ext``, see ``contact_forces``): that needs
    an acceleration-stage sensor such as our ``imu_acc`` accelerometer.
    """
    if not np.isin(model.sensor_type, [int(s) for s in _POST_CONSTRAINT_SENSORS]).any():
        raise ValueError("the undesired-contact penalty reads cfrc_ext, which MuJoCo computes only for a model "
                         "with an accelerometer (or force, torque, frame acceleration) sensor")
    allowed = set(g1.body_ids(model, g1.ALLOWED_CONTACT_BODIES).tolist())
    robot = g1.body_ids(model, g1.BODY_NAMES)
    return np.array([b for b in robot if int(b) not in allowed], dtype=np.int32)


def contact_forces(d) -> jnp.ndarray:
    """Net contact force [nbody, 3] (world frame) on every body during the last physics step.

    MuJoCo's ``cfrc_ext`` (torque, force) holds the contact forces plus ``xfrc_applied``; both MJX
    backends keep it per environment (``mjx.Data._impl.cfrc_ext``). Like ``cvel`` it describes the start
    of the last substep. The force part is the same whatever point the spatial force is referred to.
    """
    return d._impl.cfrc_ext[:, 3:6] - d.xfrc_applied[:, :3]


def undesired_contacts(forces, bodies: np.ndarray, threshold: float = CONTACT_FORCE_THRESHOLD) -> jnp.ndarray:
    """Number of ``bodies`` whose net contact force [nbody, 3] (floor and self-contacts) exceeds ``threshold``
    newtons: what a contact sensor on each body reports in the public code."""
    return jnp.sum((jnp.linalg.norm(forces[bodies], axis=-1) > threshold).astype(jnp.float32))


def body_velocities(d, body_ids: np.ndarray):
    """World linear (at the body origin) and angular velocity from MuJoCo's com-based ``cvel``.

    cvel is the spatial velocity at the subtree centre of mass of the root body; it is available after a
    physics step and describes the state at the start of the last substep (5 ms before the current qpos).
    """
    cvel = d.cvel[body_ids]
    ang, lin = cvel[:, :3], cvel[:, 3:]
    offset = d.xpos[body_ids] - d.subtree_com[1]
    return lin + jnp.cross(ang, offset), ang


def robot_state(d, body_ids: np.ndarray, lin_vel, ang_vel) -> RobotState:
    root_quat = d.qpos[3:7]
    return RobotState(
        body_pos=d.xpos[body_ids], body_quat=d.xquat[body_ids], body_lin_vel=lin_vel, body_ang_vel=ang_vel,
        joint_pos=d.qpos[7:], joint_vel=d.qvel[6:],
        root_lin_vel_b=jm.quat_rotate_inv(root_quat, d.qvel[0:3]), root_ang_vel_b=d.qvel[3:6])
