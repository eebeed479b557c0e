"""What the environment reads off MJX data: the tracked bodies, joints, pelvis velocities and floor contacts."""

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


@struct.dataclass
class ContactGeoms:
    """Collision geoms of bodies not allowed to touch the floor, for the undesired-contact count."""

    geom_id: np.ndarray = struct.field(pytree_node=False)
    radius: np.ndarray = struct.field(pytree_node=False)
    half_length: np.ndarray = struct.field(pytree_node=False)  # 0 for spheres
    body_slot: np.ndarray = struct.field(pytree_node=False)  # which penalised body each geom belongs to
    num_bodies: int = struct.field(pytree_node=False)


def contact_geoms(model: mujoco.MjModel) -> ContactGeoms:
    allowed = set(g1.body_ids(model, g1.ALLOWED_CONTACT_BODIES).tolist())
    ids, radius, half, bodies = [], [], [], []
    for g in range(model.ngeom):
        body = int(model.geom_bodyid[g])
        if body == 0 or body in allowed or model.geom_contype[g] == 0:
            continue
        if int(model.geom_type[g]) not in (int(mujoco.mjtGeom.mjGEOM_SPHERE), int(mujoco.mjtGeom.mjGEOM_CAPSULE)):
            raise ValueError(f"undesired-contact check supports spheres and capsules, not geom {model.geom(g).name}")
        ids.append(g)
        radius.append(model.geom_size[g, 0])
        half.append(model.geom_size[g, 1] if int(model.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_CAPSULE) else 0.0)
        bodies.append(body)
    unique = sorted(set(bodies))
    slots = np.array([unique.index(b) for b in bodies], dtype=np.int32)
    return ContactGeoms(geom_id=np.array(ids, dtype=np.int32), radius=np.array(radius, np.float32),
                        half_length=np.array(half, np.float32), body_slot=slots, num_bodies=len(unique))


def undesired_contacts(d, geoms: ContactGeoms, margin: float = 0.0) -> jnp.ndarray:
    """Number of penalised bodies touching the floor (z = 0).

    Our robot geoms collide only with the floor, so a body touches it exactly when one of its spheres or
    capsules reaches below the floor plane; MuJoCo's soft contact force is positive only then.
    """
    pos = d.geom_xpos[geoms.geom_id]
    axis_z = d.geom_xmat[geoms.geom_id][:, 2, 2]
    lowest = pos[:, 2] - geoms.half_length * jnp.abs(axis_z) - geoms.radius
    touching = (lowest < margin).astype(jnp.float32)
    per_body = jnp.zeros(geoms.num_bodies).at[geoms.body_slot].max(touching)
    return jnp.sum(per_body)


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
