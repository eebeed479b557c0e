"""Domain randomization as a pure function ``model, key -> batched model, in_axes`` (per environment, fixed
for its life).

The published randomization (on by default): foot friction, torso centre of mass, and default joint offsets,
which live in the env state. Model-mismatch options (off by default, ``RandomizationConfig``): link masses, a
torso payload, motor strength, armature, joint damping and dry friction; and, drawn per episode by the
environment, an action delay (:func:`action_delay`) and an IMU tilt in the actor's observation (:func:`imu_tilt`).

The model edits are pure array functions of the model's fields (numpy or JAX, with any leading batch axes),
shared with the mismatch suite (``evaluation/mismatch.py``), which applies them with fixed values to an MJX
model and to a MuJoCo ``MjModel``:

* :func:`scale_link_masses`: ``body_mass`` and ``body_inertia`` by the same factor per link, as a link of
  the same shape and uniformly denser or lighter material would have; the centre of mass stays.
* :func:`add_body_mass`: kilograms on one link, its inertia scaled with its mass (the same rule).
* :func:`scale_motor_strength`: kp (``actuator_gainprm[:, 0]`` and ``-actuator_biasprm[:, 1]`` of the position
  actuators) and the effort limit (``actuator_forcerange`` and the joint's ``jnt_actfrcrange``); kd stays.
* :func:`set_foot_friction`: the sliding friction of the foot geoms (which win contacts by priority).
* :func:`set_joint_values` (``dof_damping``, ``dof_frictionloss``) and :func:`scale_armature` on the 29 joints.

Masses, inertias and armature enter constants that MuJoCo derives at compile time; the options that change
them also recompute those (``envs/model_constants.py``), so each edit changes the fields it names and their
derived constants, nothing else. The published options keep MuJoCo's nominal constants, as before.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mimic_jax.envs import imu, model_constants
from mimic_jax.envs.config import RandomizationConfig

RANDOMIZED_FIELDS = ("geom_friction", "body_ipos")
EDITED_FIELDS = ("body_mass", "body_inertia", "body_ipos", "body_iquat", "dof_armature", "actuator_gainprm",
                 "actuator_biasprm", "actuator_forcerange", "jnt_actfrcrange", "geom_friction", "dof_damping",
                 "dof_frictionloss")  # every field an edit reads or writes
MISMATCH_SALT = 0x3A55  # mismatch options draw from fold_in(key, salt): the published draws stay as they were
DELAY_SALT = 0xDE1A
MIN_FRICTIONLOSS = 1e-6  # N m: the smallest dry friction drawn (see with_frictionloss_rows)


@dataclasses.dataclass(frozen=True, eq=False)
class ModelIndex:
    """Static tables of one model for the edits, and its JAX-backend copy for the derived constants."""

    model: mujoco.MjModel
    constants_model: object  # mjx.Model (JAX backend) of ``model``
    foot_geom_mask: np.ndarray  # [ngeom] bool
    torso_body: int
    actuator_joint: np.ndarray  # [nu] joint of each actuator
    joint_dof_mask: np.ndarray  # [nv] bool: a dof of an actuated joint (not the free joint)
    actuator_of_joint: np.ndarray  # [njnt] actuator of each joint (0 where none)
    joint_has_actuator: np.ndarray  # [njnt] bool

    @classmethod
    def of(cls, model: mujoco.MjModel, torso_body: int, device=None) -> ModelIndex:
        from mujoco import mjx

        trn = np.asarray(model.actuator_trntype)
        if np.any(trn != int(mujoco.mjtTrn.mjTRN_JOINT)):
            raise ValueError("mismatch edits support joint actuators only")
        joint = np.asarray(model.actuator_trnid[:, 0], np.int32)
        has = np.zeros(model.njnt, bool)
        has[joint] = True
        of_joint = np.zeros(model.njnt, np.int32)
        of_joint[joint] = np.arange(model.nu, dtype=np.int32)
        dof_mask = np.zeros(model.nv, bool)
        dof_mask[np.asarray(model.jnt_dofadr)[joint]] = True
        if not np.array_equal(dof_mask, joint_dof_mask(model)):
            raise ValueError("mismatch edits need one actuator on every hinge joint")
        return cls(model=model, constants_model=mjx.put_model(model, impl="jax", device=device),
                   foot_geom_mask=np.isin(np.arange(model.ngeom), foot_geom_ids(model)), torso_body=int(torso_body),
                   actuator_joint=joint, joint_dof_mask=dof_mask, actuator_of_joint=of_joint, joint_has_actuator=has)


@functools.lru_cache(maxsize=8)
def model_index(env) -> ModelIndex:
    """The :class:`ModelIndex` of a ``TrackingEnv`` (its MjModel, torso and device), built once per env."""
    return ModelIndex.of(env.mj_model, env.torso_id, device=env.device)


def joint_dof_mask(model: mujoco.MjModel) -> np.ndarray:
    """[nv] bool: the dofs of the hinge joints (the robot's 29 joints, not the free root)."""
    hinge = np.asarray(model.jnt_type) == int(mujoco.mjtJoint.mjJNT_HINGE)
    return hinge[np.asarray(model.dof_jntid)]


def foot_geom_ids(model: mujoco.MjModel) -> np.ndarray:
    return np.array([g for g in range(model.ngeom) if "_foot" in (model.geom(g).name or "")], dtype=np.int32)


def _xp(x):
    return np if isinstance(x, (np.ndarray, np.generic, float, int)) else jnp


# -- model edits: fields -> the fields they change (pure; any leading batch axes on the values) -------------
def scale_link_masses(fields: dict, scale) -> dict:
    """``scale`` [..., nbody] on each link's mass and inertia."""
    xp = _xp(scale)
    scale = xp.asarray(scale)
    return {"body_mass": fields["body_mass"] * scale, "body_inertia": fields["body_inertia"] * scale[..., None]}


def add_body_mass(fields: dict, body: int, kg) -> dict:
    """``kg`` [...] on link ``body``; its inertia scales with its mass."""
    xp = _xp(kg)
    mass = fields["body_mass"]
    ratio = (mass[..., body] + xp.asarray(kg)) / mass[..., body]
    scale = xp.where(np.arange(mass.shape[-1]) == body, ratio[..., None], 1.0)
    return scale_link_masses(fields, scale)


def scale_motor_strength(fields: dict, index: ModelIndex, scale) -> dict:
    """``scale`` [..., nu] on each position actuator's kp and effort limit (actuator and joint)."""
    xp = _xp(scale)
    scale = xp.asarray(scale)[..., None]
    col = np.arange(fields["actuator_gainprm"].shape[-1])
    joint_scale = xp.where(index.joint_has_actuator, scale[..., 0][..., index.actuator_of_joint], 1.0)
    return {"actuator_gainprm": fields["actuator_gainprm"] * xp.where(col == 0, scale, 1.0),
            "actuator_biasprm": fields["actuator_biasprm"] * xp.where(col == 1, scale, 1.0),
            "actuator_forcerange": fields["actuator_forcerange"] * scale,
            "jnt_actfrcrange": fields["jnt_actfrcrange"] * joint_scale[..., None]}


def set_foot_friction(fields: dict, index: ModelIndex, mu) -> dict:
    """Sliding friction ``mu`` [...] of every foot geom."""
    xp = _xp(mu)
    mask = index.foot_geom_mask[:, None] & (np.arange(3) == 0)
    return {"geom_friction": xp.where(mask, xp.asarray(mu)[..., None, None], fields["geom_friction"])}


def set_joint_values(fields: dict, index: ModelIndex, name: str, values) -> dict:
    """``values`` [..., nv] for dof field ``name`` (``dof_damping``, ``dof_frictionloss``) on the 29 joints."""
    xp = _xp(values)
    return {name: xp.where(index.joint_dof_mask, values, fields[name])}


def scale_armature(fields: dict, index: ModelIndex, scale) -> dict:
    """``scale`` [..., nv] on the armature of the 29 joints."""
    xp = _xp(scale)
    return {"dof_armature": fields["dof_armature"] * xp.where(index.joint_dof_mask, scale, 1.0)}


def with_frictionloss_rows(mx, dof_mask: np.ndarray):
    """MJX's JAX backend builds dof friction rows only where the compiled model had dry friction (a static
    flag); marks the ``dof_mask`` dofs so that a replaced ``dof_frictionloss`` acts there. Every marked dof
    must then have dry friction > 0: MJX keeps a row at 0 always active, a soft velocity lock, where MuJoCo C
    and MJX-Warp build no row. Warp decides per step, and needs no mark."""
    impl = getattr(mx, "_impl", None)
    if impl is None or not hasattr(impl, "dof_hasfrictionloss"):
        return mx
    marks = np.asarray(impl.dof_hasfrictionloss) | dof_mask
    return mx.replace(_impl=impl.replace(dof_hasfrictionloss=marks))


def batch_fields(mx, changed: dict, num_envs: int):
    """(model, in_axes) with ``changed`` fields broadcast to [num_envs, ...] and batched on axis 0."""
    batched = {k: jnp.broadcast_to(jnp.asarray(v, getattr(mx, k).dtype), (num_envs,) + getattr(mx, k).shape)
               for k, v in changed.items()}
    model = mx.tree_replace(batched)
    if "dof_frictionloss" in changed:
        model = with_frictionloss_rows(model, np.asarray(jnp.any(batched["dof_frictionloss"] > 0, axis=0)))
    in_axes = jax.tree_util.tree_map(lambda _: None, model)
    return model, in_axes.tree_replace({k: 0 for k in batched})


# -- training randomization --------------------------------------------------------------------------------
def mismatch_options_on(cfg: RandomizationConfig) -> bool:
    """Whether any model-mismatch option (not the delay) is set away from its neutral default."""
    return (cfg.link_mass_scale != (1.0, 1.0) or cfg.torso_added_mass != (0.0, 0.0)
            or cfg.motor_strength_scale != (1.0, 1.0) or cfg.armature_scale != (1.0, 1.0)
            or cfg.joint_damping != (0.0, 0.0) or cfg.joint_frictionloss != (0.0, 0.0))


def _uniform(key, shape, interval):
    lo, hi = interval
    return jax.random.uniform(key, shape, minval=lo, maxval=hi)


def _draws(index: ModelIndex, cfg: RandomizationConfig, key, n: int) -> list:
    """[(edit, drawn value)] of the options that are on, in the order they are applied."""
    m, k = index.model, jax.random.split(key, 6)
    out = []
    if cfg.link_mass_scale != (1.0, 1.0):
        out.append((scale_link_masses, _uniform(k[0], (n, m.nbody), cfg.link_mass_scale)))
    if cfg.torso_added_mass != (0.0, 0.0):
        if cfg.torso_added_mass[0] <= -m.body_mass[index.torso_body]:
            raise ValueError(f"env.randomization.torso_added_mass {cfg.torso_added_mass} would leave torso_link "
                             f"({m.body_mass[index.torso_body]:.2f} kg) without mass")
        kg = _uniform(k[1], (n,), cfg.torso_added_mass)
        out.append((lambda f, v: add_body_mass(f, index.torso_body, v), kg))
    if cfg.motor_strength_scale != (1.0, 1.0):
        strength = _uniform(k[2], (n, m.nu), cfg.motor_strength_scale)
        out.append((lambda f, v: scale_motor_strength(f, index, v), strength))
    if cfg.armature_scale != (1.0, 1.0):
        out.append((lambda f, v: scale_armature(f, index, v), _uniform(k[3], (n, m.nv), cfg.armature_scale)))
    if cfg.joint_damping != (0.0, 0.0):
        damping = _uniform(k[4], (n, m.nv), cfg.joint_damping)
        out.append((lambda f, v: set_joint_values(f, index, "dof_damping", v), damping))
    if cfg.joint_frictionloss != (0.0, 0.0):
        # Never exactly 0: MJX's JAX backend has a row on every joint, and a row at 0 is a soft velocity lock.
        friction = jnp.maximum(_uniform(k[5], (n, m.nv), cfg.joint_frictionloss), MIN_FRICTIONLOSS)
        out.append((lambda f, v: set_joint_values(f, index, "dof_frictionloss", v), friction))
    return out


def mismatch_fields(mx, index: ModelIndex, cfg: RandomizationConfig, key, num_envs: int, body_ipos=None) -> dict:
    """The model-mismatch draws of ``num_envs`` environments: {field: [N, ...]} of every changed field,
    derived constants included (``body_ipos``: the randomized centres of mass they are derived with)."""
    fields = {name: getattr(mx, name) for name in EDITED_FIELDS}
    changed = {}
    for edit, value in _draws(index, cfg, key, num_envs):
        out = edit(fields, value)
        fields.update(out)
        changed.update(out)
    derived = model_constants.derived_fields(changed)
    if derived:
        inputs = {name: jnp.broadcast_to(fields[name], (num_envs,) + getattr(mx, name).shape)
                  for name in model_constants.INPUT_FIELDS}
        if body_ipos is not None:
            inputs["body_ipos"] = body_ipos
        values = model_constants.batched_derived_constants(index.constants_model, inputs)
        changed.update({name: values[name] for name in derived})
    return changed


def randomize_model(mx, key, num_envs: int, cfg: RandomizationConfig, foot_geoms: np.ndarray, torso_body: int,
                    *, index: ModelIndex | None = None):
    """Returns (batched model, in_axes): only the randomized fields carry the batch axis.

    The model-mismatch options need ``index`` (``model_index(env)``).
    """
    k_fric, k_com = jax.random.split(key)
    lo, hi = cfg.foot_friction
    friction = jnp.broadcast_to(mx.geom_friction, (num_envs,) + mx.geom_friction.shape)
    sliding = jax.random.uniform(k_fric, (num_envs,), minval=lo, maxval=hi)
    friction = friction.at[:, foot_geoms, 0].set(sliding[:, None])
    ipos = jnp.broadcast_to(mx.body_ipos, (num_envs,) + mx.body_ipos.shape)
    span = jnp.array([cfg.torso_com_x, cfg.torso_com_yz, cfg.torso_com_yz])
    offset = jax.random.uniform(k_com, (num_envs, 3), minval=-1.0, maxval=1.0) * span
    ipos = ipos.at[:, torso_body].add(offset)
    changed = {"geom_friction": friction, "body_ipos": ipos}
    if mismatch_options_on(cfg):
        if index is None:
            raise ValueError("the model-mismatch randomization options need the model's ModelIndex (index=)")
        changed.update(mismatch_fields(mx, index, cfg, jax.random.fold_in(key, MISMATCH_SALT), num_envs, ipos))
    return batch_fields(mx, changed, num_envs)


def default_joint_offsets(key, num_envs: int, cfg: RandomizationConfig, num_joints: int = 29):
    return jax.random.uniform(key, (num_envs, num_joints), minval=-cfg.joint_default_offset,
                              maxval=cfg.joint_default_offset)


# -- action delay and IMU tilt (per episode, drawn by the environment at its reset) ------------------------
IMU_SALT = 0x1C0
def max_action_delay(cfg: RandomizationConfig) -> int:
    """The longest delay the config can draw (control steps); 0 when randomization is off."""
    return int(cfg.action_delay_steps[1]) if cfg.enabled else 0


def action_delay(key, cfg: RandomizationConfig):
    """One episode's delay, U{lo..hi} control steps (int32; 0 when randomization is off)."""
    if not cfg.enabled or cfg.action_delay_steps == (0, 0):
        return jnp.zeros((), jnp.int32)
    lo, hi = cfg.action_delay_steps
    return jax.random.randint(jax.random.fold_in(key, DELAY_SALT), (), lo, hi + 1, dtype=jnp.int32)


def imu_tilt_on(cfg: RandomizationConfig) -> bool:
    return cfg.enabled and cfg.imu_tilt_deg > 0.0


def imu_tilt(key, cfg: RandomizationConfig):
    """One episode's IMU frame [3, 3] (``envs.imu.tilt_rotation``): roll and pitch U(-d, d) degrees."""
    if not imu_tilt_on(cfg):
        return jnp.eye(3)
    span = jnp.deg2rad(cfg.imu_tilt_deg)
    roll, pitch = jax.random.uniform(jax.random.fold_in(key, IMU_SALT), (2,), minval=-span, maxval=span)
    return imu.tilt_rotation(roll, pitch)


def delay_action(queue, command, delay):
    """(new queue, executed action): ``queue`` [..., K + 1, A] holds the last commands, newest first; the
    motors get the command of ``delay`` [...] steps ago. A fresh queue is zeros: the default pose, which is
    what the motors hold at a reset (``ctrl = default_pos``)."""
    queue = jnp.concatenate([jnp.asarray(command, queue.dtype)[..., None, :], queue[..., :-1, :]], axis=-2)
    lag = jnp.asarray(delay, jnp.int32)[..., None, None]
    executed = jnp.take_along_axis(queue, jnp.broadcast_to(lag, queue.shape[:-2] + (1, 1)), axis=-2)[..., 0, :]
    return queue, executed
