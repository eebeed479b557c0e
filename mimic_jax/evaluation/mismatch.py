"""The model-mismatch suite: named perturbations of the robot, each a pure function of the model.

A :class:`Perturbation` is a list of model edits (``envs.randomize``: link masses, torso payload, motor
strength, foot friction, joint damping and dry friction, armature), an action delay and an IMU tilt
(``envs/imu.py``, ``evaluation/sensing.py``), and whether the robust mode's pushes act. The same perturbation gives

* :func:`mujoco_model`: a new ``mujoco.MjModel`` (the sim-to-sim engine), derived constants by ``mj_setConst``;
* :func:`mjx_model`: a new ``mjx.Model``, derived constants by ``envs.model_constants`` (as ``mj_setConst``);
* :func:`batched_mjx_model`: one batched MJX model for many episodes, each under its own perturbation
  (``model_fn`` of the episode runner).

Each changes the fields in :attr:`Perturbation.fields` and nothing else (``tests/test_mismatch.py`` compares
every field). :data:`STANDARD` is the suite of ``python -m mimic_jax.eval --suite mismatch``: every clip
from frame 0, clean otherwise (no observation noise, no randomization, mean action).
"""

from __future__ import annotations

import copy
import dataclasses

import jax.numpy as jnp
import mujoco
import numpy as np

from mimic_jax.envs import model_constants, randomize
from mimic_jax.envs.imu import tilt_matrix
from mimic_jax.envs.randomize import ModelIndex

WRIST = "wrist"


@dataclasses.dataclass(frozen=True)
class ModelEdit:
    """One edit of the model's fields (``kind`` names an ``envs.randomize`` edit; see :data:`EDITS`)."""

    kind: str
    value: float
    wrist_value: float | None = None  # dry friction of the wrist joints, when it differs

    def __post_init__(self):
        if self.kind not in EDITS:
            raise ValueError(f"unknown model edit {self.kind!r}; one of {sorted(EDITS)}")

    @property
    def fields(self) -> tuple[str, ...]:
        return EDITS[self.kind][0]

    def describe(self) -> str:
        text = EDITS[self.kind][1].format(v=self.value)
        return text + (f" ({self.wrist_value:g} on the wrists)" if self.wrist_value is not None else "")

    def apply(self, fields: dict, index: ModelIndex) -> dict:
        """The changed fields (numpy in, numpy out; JAX in, JAX out)."""
        xp = np if isinstance(fields["body_mass"], np.ndarray) else jnp
        v = xp.asarray(self.value, fields["body_mass"].dtype)
        if self.kind == "link_mass_scale":
            return randomize.scale_link_masses(fields, xp.full(fields["body_mass"].shape, v))
        if self.kind == "torso_added_mass":
            return randomize.add_body_mass(fields, index.torso_body, v)
        if self.kind == "motor_strength_scale":
            return randomize.scale_motor_strength(fields, index, xp.full(index.actuator_joint.shape, v))
        if self.kind == "foot_friction":
            return randomize.set_foot_friction(fields, index, v)
        if self.kind == "armature_scale":
            return randomize.scale_armature(fields, index, xp.full(index.joint_dof_mask.shape, v))
        values = xp.full(index.joint_dof_mask.shape, v)
        if self.wrist_value is not None:
            values = xp.where(wrist_dof_mask(index.model), xp.asarray(self.wrist_value, v.dtype), values)
        return randomize.set_joint_values(fields, index, EDITS[self.kind][0][0], values)


MASS_FIELDS = ("body_mass", "body_inertia")
EDITS = {  # kind -> (fields it names, description)
    "link_mass_scale": (MASS_FIELDS, "every link's mass and inertia x{v:g}"),
    "torso_added_mass": (MASS_FIELDS, "{v:+g} kg on torso_link (its inertia scaled with its mass)"),
    "motor_strength_scale": (("actuator_gainprm", "actuator_biasprm", "actuator_forcerange", "jnt_actfrcrange"),
                             "kp and effort limit of every motor x{v:g}"),
    "foot_friction": (("geom_friction",), "foot sliding friction {v:g}"),
    "joint_damping": (("dof_damping",), "joint damping {v:g} N m s/rad"),
    "joint_frictionloss": (("dof_frictionloss",), "joint dry friction {v:g} N m"),
    "armature_scale": (("dof_armature",), "joint armature x{v:g}"),
}


def wrist_dof_mask(model: mujoco.MjModel) -> np.ndarray:
    """[nv] bool: the dofs of the six wrist joints."""
    mask = np.zeros(model.nv, bool)
    for j in range(model.njnt):
        if WRIST in (model.joint(j).name or ""):
            mask[model.jnt_dofadr[j]] = True
    return mask


@dataclasses.dataclass(frozen=True, kw_only=True)
class Perturbation:
    """A named change of the robot (module doc); the default is the unperturbed robot."""

    name: str
    edits: tuple[ModelEdit, ...] = ()
    delay_steps: int = 0  # control steps from the policy's command to the motors
    imu_tilt_deg: tuple[float, float] = (0.0, 0.0)  # roll, pitch of the IMU frame in the body
    pushes: bool = False  # the robust mode's pushes (the run's push config)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every MJX model field this perturbation changes: the edits' and their derived constants."""
        names = [f for e in self.edits for f in e.fields]
        return tuple(dict.fromkeys(names + list(model_constants.derived_fields(names))))

    def describe(self) -> str:
        parts = [e.describe() for e in self.edits]
        if self.delay_steps:
            parts.append(f"action delay {self.delay_steps} control step{'s' if self.delay_steps > 1 else ''}")
        if any(self.imu_tilt_deg):
            roll, pitch = self.imu_tilt_deg
            parts.append(f"IMU tilted {roll:g} deg roll, {pitch:g} deg pitch")
        if self.pushes:
            parts.append("pushes of the robust mode")
        return "; ".join(parts) or "the robot as modelled"


NOMINAL = Perturbation(name="nominal")


def _single(name: str, kind: str, value: float, **kw) -> Perturbation:
    return Perturbation(name=name, edits=(ModelEdit(kind, value, **kw),))


MASS_HEAVY, MOTOR_WEAK = ModelEdit("link_mass_scale", 1.1), ModelEdit("motor_strength_scale", 0.9)
SINGLE = (
    _single("mass_x0.9", "link_mass_scale", 0.9), _single("mass_x1.1", "link_mass_scale", 1.1),
    _single("torso_+2kg", "torso_added_mass", 2.0), _single("torso_-2kg", "torso_added_mass", -2.0),
    _single("motor_x0.9", "motor_strength_scale", 0.9), _single("motor_x1.1", "motor_strength_scale", 1.1),
    Perturbation(name="delay_1", delay_steps=1), Perturbation(name="delay_2", delay_steps=2),
    _single("foot_friction_0.3", "foot_friction", 0.3), _single("foot_friction_1.2", "foot_friction", 1.2),
    _single("damping_0.05", "joint_damping", 0.05),
    _single("dry_friction_0.2", "joint_frictionloss", 0.2, wrist_value=0.1),
    _single("armature_x0.8", "armature_scale", 0.8), _single("armature_x1.2", "armature_scale", 1.2),
    Perturbation(name="imu_pitch_2deg", imu_tilt_deg=(0.0, 2.0)),
    Perturbation(name="imu_roll_2deg", imu_tilt_deg=(2.0, 0.0)),
    Perturbation(name="pushes", pushes=True),
)
_HEAVY_WEAK = (MASS_HEAVY, ModelEdit("torso_added_mass", 2.0), MOTOR_WEAK, ModelEdit("armature_scale", 1.2))
COMBINED = (
    Perturbation(name="joint_losses", edits=(ModelEdit("joint_damping", 0.05),
                                             ModelEdit("joint_frictionloss", 0.2, wrist_value=0.1))),
    Perturbation(name="heavy_weak_delayed", edits=_HEAVY_WEAK, delay_steps=1),
    Perturbation(name="light_strong_slippery", edits=(ModelEdit("link_mass_scale", 0.9),
                                                      ModelEdit("motor_strength_scale", 1.1),
                                                      ModelEdit("foot_friction", 0.3))),
    Perturbation(name="heavy_weak_delayed_pushed", edits=_HEAVY_WEAK, delay_steps=1, pushes=True),
)
STANDARD = (NOMINAL,) + SINGLE + COMBINED


def by_name(names) -> tuple[Perturbation, ...]:
    """The standard perturbations named (the nominal one is always first); refuses unknown names."""
    known = {p.name: p for p in STANDARD}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown perturbation(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return (NOMINAL,) + tuple(known[n] for n in dict.fromkeys(names) if n != NOMINAL.name)


# -- the perturbed models --------------------------------------------------------------------------------
def _edited(fields: dict, p: Perturbation, index: ModelIndex) -> dict:
    """Fields after every edit of ``p`` in order: {name: value} of the fields changed."""
    fields, changed = dict(fields), {}
    for edit in p.edits:
        out = edit.apply(fields, index)
        fields.update(out)
        changed.update(out)
    return changed


def mujoco_model(model: mujoco.MjModel, p: Perturbation, index: ModelIndex) -> mujoco.MjModel:
    """A perturbed copy of ``model`` (float64 edits, then ``mj_setConst`` for the derived constants)."""
    out = copy.deepcopy(model)
    fields = {name: np.array(getattr(model, name)) for name in randomize.EDITED_FIELDS}
    for name, value in _edited(fields, p, index).items():
        getattr(out, name)[...] = value
    mujoco.mj_setConst(out, mujoco.MjData(out))
    return out


def _mjx_fields(mx, p: Perturbation, index: ModelIndex) -> dict:
    fields = {name: getattr(mx, name) for name in randomize.EDITED_FIELDS}
    changed = _edited(fields, p, index)
    derived = model_constants.derived_fields(changed)
    if derived:
        inputs = {name: changed.get(name, fields[name]) for name in model_constants.INPUT_FIELDS}
        values = model_constants.derived_constants(index.constants_model, inputs)
        changed.update({name: values[name] for name in derived})
    return changed


def mjx_model(mx, p: Perturbation, index: ModelIndex):
    """A perturbed copy of the MJX model ``mx`` (any backend)."""
    changed = _mjx_fields(mx, p, index)
    out = mx.tree_replace(changed)
    if "dof_frictionloss" in changed:
        out = randomize.with_frictionloss_rows(out, np.asarray(changed["dof_frictionloss"]) > 0)
    return out


def batched_mjx_model(mx, perturbations, condition, index: ModelIndex):
    """(model, in_axes) for N episodes, episode n under ``perturbations[condition[n]]``.

    Only the fields some perturbation changes carry the batch axis; the rest stay shared.
    """
    per = [_mjx_fields(mx, p, index) for p in perturbations]
    names = list(dict.fromkeys(k for fields in per for k in fields))
    stacked = {k: jnp.stack([fields.get(k, getattr(mx, k)) for fields in per]) for k in names}
    condition = jnp.asarray(condition, jnp.int32)
    return randomize.batch_fields(mx, {k: v[condition] for k, v in stacked.items()}, int(condition.shape[0]))


def model_fn(perturbations, condition, index: ModelIndex):
    """The episode runner's ``model_fn(mx, key, n)`` for :func:`batched_mjx_model` (no randomization)."""
    def build(mx, key, num_envs):
        del key
        if num_envs != len(condition):
            raise ValueError(f"{len(condition)} planned episodes for {num_envs} environments")
        return batched_mjx_model(mx, perturbations, condition, index)
    return build


def episode_arrays(perturbations, condition) -> tuple[np.ndarray, np.ndarray]:
    """(delay [N] int32, IMU tilt [N, 3, 3]) of N episodes under ``perturbations[condition[n]]``."""
    delay = np.array([perturbations[c].delay_steps for c in condition], np.int32)
    tilt = np.stack([tilt_matrix(*perturbations[c].imu_tilt_deg) for c in condition]).astype(np.float32)
    return delay, tilt
