"""The controller: sensors + reference -> observation -> ONNX policy -> joint position targets.

What a robot's control loop does at each control step, and all of it: pelvis orientation from the IMU, the
robot anchor's pose by forward kinematics of the exported model (its own ``MjData``: pelvis pose and joint
encoders in, ``mj_kinematics``), the observation terms of ``deploy.yaml`` in order, one ONNX call, and
``q_target = default_joint_pos + action_scale * actions``.
"""

from __future__ import annotations

from typing import NamedTuple

import mujoco
import numpy as np

from mimic_jax.deploy import maths
from mimic_jax.deploy.model import Layout
from mimic_jax.deploy.observations import Inputs, Sensors, observation


class RefFrame(NamedTuple):
    """The reference at one frame: joints and the tracked bodies' world poses and velocities."""

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    body_pos: np.ndarray
    body_quat: np.ndarray
    body_lin_vel: np.ndarray
    body_ang_vel: np.ndarray


class Controller:
    """One policy in its control loop; ``last_action`` is its only state."""

    def __init__(self, session, config: dict, model: mujoco.MjModel, layout: Layout, one_hot: np.ndarray):
        self.session, self.config, self.model, self.layout = session, config, model, layout
        self.fk = mujoco.MjData(model)
        tracked = config["bodies"]["tracked"]
        self.anchor_index = tracked.index(config["bodies"]["anchor"])
        self.anchor_body = int(layout.tracked_bodies[self.anchor_index])
        self.imu_in_body = np.asarray(config["sensors"]["imu"]["quat_in_body"], np.float64)
        self.default = np.asarray(config["default_joint_pos"]["nominal"], np.float64)
        self.scale = np.asarray(config["action"]["scale"], np.float64)
        self.one_hot = np.asarray(one_hot, np.float64)
        self.time_input = config["policy"]["time_step_input"]
        self.last_action = np.zeros(len(self.default))

    def anchor_pose(self, pelvis_pos_w: np.ndarray, pelvis_quat_w: np.ndarray, joint_pos: np.ndarray):
        """World pose of the anchor body by forward kinematics from the pelvis pose and the joint positions."""
        lay = self.layout
        self.fk.qpos[lay.root_qpos:lay.root_qpos + 3] = pelvis_pos_w
        self.fk.qpos[lay.root_qpos + 3:lay.root_qpos + 7] = pelvis_quat_w
        self.fk.qpos[lay.joint_qpos] = joint_pos
        mujoco.mj_kinematics(self.model, self.fk)
        return self.fk.xpos[self.anchor_body].copy(), self.fk.xquat[self.anchor_body].copy()

    def inputs(self, sensors: Sensors, ref: RefFrame) -> Inputs:
        """The observation's inputs: sensors turned into pelvis and anchor quantities, plus the reference."""
        pelvis_quat = maths.quat_mul(sensors.imu_quat_w, maths.quat_conj(self.imu_in_body))
        gyro = maths.quat_rotate(self.imu_in_body, sensors.imu_gyro)
        anchor_pos, anchor_quat = self.anchor_pose(sensors.pelvis_pos_w, pelvis_quat, sensors.joint_pos)
        a = self.anchor_index
        return Inputs(sensors=sensors, pelvis_quat_w=pelvis_quat, gyro_pelvis=gyro, anchor_pos_w=anchor_pos,
                      anchor_quat_w=anchor_quat, ref_joint_pos=ref.joint_pos, ref_joint_vel=ref.joint_vel,
                      ref_anchor_pos_w=ref.body_pos[a], ref_anchor_quat_w=ref.body_quat[a],
                      last_action=self.last_action, default_joint_pos=self.default, one_hot=self.one_hot)

    def observe(self, sensors: Sensors, ref: RefFrame) -> np.ndarray:
        return observation(self.config["observation"]["terms"], self.inputs(sensors, ref))

    def act(self, obs: np.ndarray, frame: int) -> np.ndarray:
        """The policy's actions for one observation (``frame`` feeds the deployment form's ``time_step``)."""
        feed = {self.config["policy"]["input"]: obs[None]}
        if self.time_input:
            feed[self.time_input] = np.array([[frame]], np.float32)
        action = self.session.run([self.config["policy"]["output"]], feed)[0][0]
        return np.asarray(action, np.float64)

    def targets(self, action: np.ndarray) -> np.ndarray:
        """Joint position targets of an action; the action becomes ``last_action``."""
        self.last_action = np.asarray(action, np.float64)
        return self.default + self.scale * self.last_action
