"""The simulated robot: MuJoCo C physics, and what its sensors report.

The simulation ``MjData`` is only stepped. Sensors are read from a second ``MjData`` (a view) set to the
simulation's state and brought up to date with ``mj_forward``: after ``mj_step`` the simulation's own
derived quantities (``site_xmat``, ``sensordata``) describe the start of the last physics step, while a
real IMU and encoders report the present; and the view never touches the simulation (its solver warm
start stays as stepping left it).
"""

from __future__ import annotations

import mujoco
import numpy as np

from mimic_jax.deploy import maths
from mimic_jax.deploy.metrics import Pose
from mimic_jax.deploy.model import Layout
from mimic_jax.deploy.observations import Sensors


class SimRobot:
    """One robot in one simulation: reset onto a reference pose, position targets, physics, sensors."""

    def __init__(self, model: mujoco.MjModel, layout: Layout, *, decimation: int, state_estimation: bool):
        self.model, self.layout, self.decimation = model, layout, int(decimation)
        self.state_estimation = bool(state_estimation)
        self.data = mujoco.MjData(model)
        self.view = mujoco.MjData(model)

    def reset(self, root_pos, root_quat, root_lin_vel_w, root_ang_vel_w, joint_pos, joint_vel, targets) -> None:
        """The robot exactly at a reference pose and velocity (free-joint angular velocity in the body frame)."""
        m, d, lay = self.model, self.data, self.layout
        mujoco.mj_resetData(m, d)
        d.qpos[lay.root_qpos:lay.root_qpos + 3] = root_pos
        d.qpos[lay.root_qpos + 3:lay.root_qpos + 7] = root_quat
        d.qpos[lay.joint_qpos] = joint_pos
        d.qvel[lay.root_dof:lay.root_dof + 3] = root_lin_vel_w
        d.qvel[lay.root_dof + 3:lay.root_dof + 6] = maths.quat_rotate_inv(root_quat, root_ang_vel_w)
        d.qvel[lay.joint_dof] = joint_vel
        d.ctrl[lay.actuator] = targets
        mujoco.mj_forward(m, d)
        self._sync()

    def step(self, targets: np.ndarray) -> None:
        """Holds the joint position targets for one control step (``decimation`` physics steps)."""
        self.data.ctrl[self.layout.actuator] = targets
        for _ in range(self.decimation):
            mujoco.mj_step(self.model, self.data)
        self._sync()

    def _sync(self) -> None:
        self.view.qpos[:], self.view.qvel[:], self.view.ctrl[:] = self.data.qpos, self.data.qvel, self.data.ctrl
        self.view.time = self.data.time
        mujoco.mj_forward(self.model, self.view)

    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.data.qpos)) and np.all(np.isfinite(self.data.qvel)))

    def sensors(self) -> Sensors:
        """IMU (orientation of its site, gyro), joint encoders and, if the policy uses one, the state estimate."""
        v, lay = self.view, self.layout
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, v.site_xmat[lay.imu_site])
        zeros = np.zeros(3)
        root = v.qpos[lay.root_qpos:lay.root_qpos + 3].copy() if self.state_estimation else zeros
        root_vel = v.qvel[lay.root_dof:lay.root_dof + 3].copy() if self.state_estimation else zeros
        return Sensors(imu_quat_w=quat, imu_gyro=v.sensordata[lay.gyro_adr:lay.gyro_adr + 3].copy(),
                       joint_pos=v.qpos[lay.joint_qpos].copy(), joint_vel=v.qvel[lay.joint_dof].copy(),
                       pelvis_pos_w=root, pelvis_lin_vel_w=root_vel)

    def pose(self) -> Pose:
        """The true pose (tracked bodies, joints) for the metrics."""
        v, lay = self.view, self.layout
        return Pose(body_pos=v.xpos[lay.tracked_bodies].copy(), body_quat=v.xquat[lay.tracked_bodies].copy(),
                    joint_pos=v.qpos[lay.joint_qpos].copy(), joint_vel=v.qvel[lay.joint_dof].copy())
