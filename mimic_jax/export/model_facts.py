"""Robot facts for deploy.yaml, read from the MuJoCo model exactly as training builds it.

:func:`training_model` is the model of ``TrackingEnv`` and ``evaluation.sim2sim``; the exported MJCF files
are copied verbatim, and what training changes after loading them is written as ``model.overrides``; the
export refuses a training model that differs from MJCF + overrides anywhere else (:func:`model_difference`
compares every array and option of the two models).
"""

from __future__ import annotations

import mujoco
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.assets.build_g1 import ROBOT_XML, SCENE_XML, load_facts
from mimic_jax.deploy.config import sha256
from mimic_jax.deploy.model import GEOM_OVERRIDES, apply_overrides, model_files
from mimic_jax.envs.config import EnvConfig
from mimic_jax.export.actor import ExportError

ROOT_BODY = "pelvis"


def training_model(env_cfg: EnvConfig) -> mujoco.MjModel:
    """The MuJoCo model as the environment builds it (``TrackingEnv``, ``evaluation.sim2sim``)."""
    model = g1.load_model(collisions=env_cfg.collisions)
    model.opt.timestep = env_cfg.physics_dt
    return model


def floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, np.float64).reshape(-1)]


def model_difference(a: mujoco.MjModel, b: mujoco.MjModel) -> str | None:
    """The first array or option in which two models differ (None if none)."""
    for name in sorted(n for n in dir(a) if not n.startswith("_")):
        x = getattr(a, name)
        if isinstance(x, np.ndarray) and not np.array_equal(x, getattr(b, name), equal_nan=True):
            return name
    for name in sorted(n for n in dir(a.opt) if not n.startswith("_")):
        if not np.array_equal(getattr(a.opt, name), getattr(b.opt, name)):
            return f"opt.{name}"
    return None


def model_section(trained: mujoco.MjModel) -> dict:
    """The files (sha256) and the settings training applies on top of them (``trained``: the training model)."""
    raw = mujoco.MjModel.from_xml_path(str(SCENE_XML))
    overrides: dict = {"timestep": float(trained.opt.timestep)}
    for field in GEOM_OVERRIDES:
        changed = np.flatnonzero(getattr(raw, field) != getattr(trained, field))
        names = [mujoco.mj_id2name(trained, mujoco.mjtObj.mjOBJ_GEOM, int(g)) for g in changed]
        if None in names:
            raise ExportError(f"training changes {field} of an unnamed geom; name it in the MJCF to export")
        overrides[field] = {n: int(getattr(trained, field)[g]) for n, g in zip(names, changed)}
    differs = model_difference(apply_overrides(raw, overrides), trained)
    if differs:
        raise ExportError(f"the training model differs from its MJCF in {differs}, which deploy.yaml cannot express")
    paths = model_files(SCENE_XML)
    if any(p.parent != SCENE_XML.parent for p in paths):
        raise ExportError(f"{SCENE_XML} includes files from other folders; the export copies one folder")
    files = {p.name: sha256(p) for p in paths}
    return {"scene": SCENE_XML.name, "robot": ROBOT_XML.name, "files": files, "overrides": overrides}


def _velocity_limits(table) -> list[float]:
    """Rated motor velocity per joint (the facts file's motor classes; a 2x5020 linkage runs at 1:1)."""
    motors = load_facts()["actuator_classes"]["motors"]
    return [float(motors[c.removeprefix("2x")]["velocity_limit_rad_s"]) for c in table.motor_class]


def joints_section(model: mujoco.MjModel, env_cfg: EnvConfig) -> dict:
    """Names, gains and limits of the actuated joints, in actuator order (= the policy's action order)."""
    table = g1.joint_table()
    joints = [int(j) for j in model.actuator_trnid[:, 0]]
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints]
    if names != list(g1.JOINT_NAMES):
        raise ExportError("the model's actuators are not in JOINT_NAMES order, the policy's action order")
    position = (model.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE) & np.isclose(
        model.actuator_biasprm[:, 1], -model.actuator_gainprm[:, 0]) & model.actuator_forcelimited.astype(bool)
    if not np.all(position):
        raise ExportError(f"actuator {model.actuator(int(np.argmin(position))).name} is not a force-limited "
                          "position actuator (kp, kv, forcerange)")
    return {"names": names, "order": "MuJoCo depth-first = the Unitree SDK's motor order",
            "names_isaac": list(g1.ISAAC_JOINT_NAMES), "motor_class": list(table.motor_class),
            "stiffness": floats(model.actuator_gainprm[:, 0]), "damping": floats(-model.actuator_biasprm[:, 2]),
            "armature": floats(model.dof_armature[model.jnt_dofadr[joints]]),
            "effort_limit": floats(model.actuator_forcerange[:, 1]), "velocity_limit": _velocity_limits(table),
            "position_lower": floats(model.jnt_range[joints, 0]), "position_upper": floats(model.jnt_range[joints, 1]),
            "soft_limit_factor": float(env_cfg.soft_limit_factor)}


def sensors_section(model: mujoco.MjModel, env_cfg: EnvConfig) -> dict:
    """The IMU (the site of the root body with a gyro), the joint encoders and, if used, the state estimate."""
    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, ROOT_BODY)
    gyros = [s for s in range(model.nsensor) if model.sensor_type[s] == mujoco.mjtSensor.mjSENS_GYRO
             and model.site_bodyid[model.sensor_objid[s]] == root]
    if not gyros:
        raise ExportError(f"the robot model has no gyro on a site of its root body '{ROOT_BODY}'")
    site = int(model.sensor_objid[gyros[0]])
    estimator = ({"body": ROOT_BODY, "gives": ["pelvis_pos_w", "pelvis_lin_vel_w"]}
                 if env_cfg.state_estimation else None)
    return {"imu": {"site": model.site(site).name, "body": ROOT_BODY, "quat_in_body": floats(model.site_quat[site]),
                    "gyro_sensor": model.sensor(gyros[0]).name, "gives": ["orientation", "gyro"]},
            "joint_encoders": {"gives": ["position", "velocity"], "order": "joints.names"},
            "state_estimator": estimator}
