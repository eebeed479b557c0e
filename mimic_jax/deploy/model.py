"""The robot model of an exported folder: its files and checksums, the settings applied on top of the MJCF,
and the name -> address tables the runner reads MjData with.

The MJCF is copied verbatim at export (its sha256 is the checkpoint's ``model_hash``); what training changed
after loading it (physics dt, collisions switched off) is listed in ``model.overrides`` and applied here by
:func:`apply_overrides`, so the runner simulates exactly the model the policy was trained on.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import mujoco
import numpy as np

from mimic_jax.deploy.config import DeployError, sha256

GEOM_OVERRIDES = ("geom_contype", "geom_conaffinity")


def model_files(scene: Path) -> list[Path]:
    """The scene MJCF and every file it includes (recursively), scene first."""
    out, todo = [], [Path(scene)]
    while todo:
        path = todo.pop(0)
        out.append(path)
        for el in ET.parse(path).getroot().iter("include"):
            todo.append(path.parent / el.get("file"))
    return out


def apply_overrides(model: mujoco.MjModel, overrides: dict) -> mujoco.MjModel:
    """Applies ``model.overrides`` of deploy.yaml (timestep, per-geom collision bits) in place."""
    model.opt.timestep = float(overrides["timestep"])
    for field in GEOM_OVERRIDES:
        array = getattr(model, field)
        for name, value in overrides.get(field, {}).items():
            geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
            if geom < 0:
                raise DeployError(f"model.overrides.{field}: no geom '{name}' in the model")
            array[geom] = int(value)
    return model


def load_model(folder: Path, config: dict, where: str) -> mujoco.MjModel:
    """The training model from the exported MJCF; refuses files whose checksum differs from ``deploy.yaml``."""
    section = config["model"]
    for name, want in section["files"].items():
        path = folder / name
        if not path.is_file():
            raise DeployError(f"{path}: missing (the robot model {where} describes)")
        got = sha256(path)
        if got != want:
            raise DeployError(f"{path}: sha256 {got[:12]} differs from {where}'s {want[:12]} (another robot model)")
    try:
        model = mujoco.MjModel.from_xml_path(str(folder / section["scene"]))
    except ValueError as exc:
        raise DeployError(f"{folder / section['scene']}: MuJoCo cannot load it ({str(exc).splitlines()[0]})") from None
    return apply_overrides(model, section["overrides"])


class Layout(NamedTuple):
    """Where each named thing of deploy.yaml lives in the model's arrays."""

    root_qpos: int  # first qpos of the free joint (position, then quaternion)
    root_dof: int
    joint_qpos: np.ndarray  # [J] qpos address per joint, joints.names order
    joint_dof: np.ndarray  # [J]
    actuator: np.ndarray  # [J] actuator driving each joint
    tracked_bodies: np.ndarray  # [B] body ids, bodies.tracked order
    imu_site: int
    gyro_adr: int  # sensordata address of the gyro


def _id(model, kind, name: str, what: str) -> int:
    i = mujoco.mj_name2id(model, kind, name)
    if i < 0:
        raise DeployError(f"the robot model has no {what} '{name}' (deploy.yaml names it)")
    return i


def check_joint_order(model: mujoco.MjModel, names: list[str], where: str) -> None:
    """Refuses a model whose actuators drive other joints, or the same joints in another order, than ``names``."""
    driven = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(j)) for j in model.actuator_trnid[:, 0]]
    if driven != list(names):
        i = next((k for k, (a, b) in enumerate(zip(driven, names)) if a != b), min(len(driven), len(names)))
        a = driven[i] if i < len(driven) else "nothing"
        b = names[i] if i < len(names) else "nothing"
        raise DeployError(f"{where}: the model's actuated joints are not deploy.yaml's joints.names "
                          f"(position {i}: {a} vs {b})")


def layout(model: mujoco.MjModel, config: dict) -> Layout:
    """The address tables of ``config``'s names in ``model``."""
    joints = [_id(model, mujoco.mjtObj.mjOBJ_JOINT, n, "joint") for n in config["joints"]["names"]]
    root_body = _id(model, mujoco.mjtObj.mjOBJ_BODY, config["bodies"]["root"], "body")
    root_joint = int(model.body_jntadr[root_body])
    if root_joint < 0 or model.jnt_type[root_joint] != mujoco.mjtJoint.mjJNT_FREE:
        raise DeployError(f"the robot model's root body '{config['bodies']['root']}' has no free joint")
    imu = config["sensors"]["imu"]
    gyro = _id(model, mujoco.mjtObj.mjOBJ_SENSOR, imu["gyro_sensor"], "sensor")
    actuator_of = {int(j): a for a, j in enumerate(model.actuator_trnid[:, 0])}
    return Layout(root_qpos=int(model.jnt_qposadr[root_joint]), root_dof=int(model.jnt_dofadr[root_joint]),
                  joint_qpos=model.jnt_qposadr[joints].astype(np.int64),
                  joint_dof=model.jnt_dofadr[joints].astype(np.int64),
                  actuator=np.array([actuator_of[j] for j in joints], np.int64),
                  tracked_bodies=np.array([_id(model, mujoco.mjtObj.mjOBJ_BODY, n, "body")
                                           for n in config["bodies"]["tracked"]], np.int64),
                  imu_site=_id(model, mujoco.mjtObj.mjOBJ_SITE, imu["site"], "site"),
                  gyro_adr=int(model.sensor_adr[gyro]))
