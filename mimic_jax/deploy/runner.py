"""Sim-to-sim with the exported folder alone: one clean episode of a clip on MuJoCo C.

The protocol of ``mimic_jax.evaluation.sim2sim`` (the clean one): the robot starts exactly on the
reference at frame 0, the policy's actions are held for ``control.decimation`` physics steps of
``control.physics_dt``, the reference advances one frame per control step, and after each step the metrics
and terminations are computed at the new instant; the episode ends at the clip's last frame or at the first
termination (or non-finite physics). The observation comes from the robot's sensors (``robot.SimRobot``)
through the controller (``controller.Controller``); the metrics from the simulation's true pose.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mimic_jax.deploy import metrics
from mimic_jax.deploy.bundle import Bundle
from mimic_jax.deploy.controller import Controller
from mimic_jax.deploy.reference import Reference
from mimic_jax.deploy.robot import SimRobot


class Episode(NamedTuple):
    """At frame k = 0 .. length: ``obs[k]``, ``actions[k]``; after control step k + 1: ``qpos[k]``, ``qvel[k]``."""

    obs: np.ndarray  # [length + 1, A] the ONNX inputs
    actions: np.ndarray  # [length + 1, J] its outputs
    qpos0: np.ndarray  # [nq] at the start
    qpos: np.ndarray  # [length, nq] after each control step
    qvel: np.ndarray  # [length, nv]
    errors: dict  # metric -> [length]
    success: bool
    termination: str  # first termination that fired, "" on success
    summary: dict  # metrics.summarize


def one_hot_for(config: dict, name: str) -> tuple[np.ndarray, str]:
    """The motion one-hot for clip ``name`` and how it was chosen (as ``mimic_jax.eval`` chooses it)."""
    motion = config["motion"]
    if name in motion["names"]:
        return np.eye(len(motion["names"]))[motion["names"].index(name)], f"training clip '{name}'"
    return np.asarray(motion["unseen_clip_one_hot"], np.float64), "normalizer mean (clip not in the training set)"


def _reset(robot: SimRobot, ref: Reference, root: int, targets: np.ndarray) -> None:
    f = ref.frame(0)
    robot.reset(f.body_pos[root], f.body_quat[root], f.body_lin_vel[root], f.body_ang_vel[root], f.joint_pos,
                f.joint_vel, targets)


def run_episode(bundle: Bundle, ref: Reference, one_hot: np.ndarray) -> Episode:
    """One clean episode of ``ref`` with the bundle's policy."""
    config = bundle.config
    layout = metrics.BodyLayout.from_config(config)
    control = config["control"]
    robot = SimRobot(bundle.model, bundle.layout, decimation=control["decimation"],
                     state_estimation=config["sensors"]["state_estimator"] is not None)
    ctrl = Controller(bundle.session, config, bundle.model, bundle.layout, one_hot)
    _reset(robot, ref, layout.root, ctrl.default)
    qpos0 = robot.data.qpos.copy()
    obs = [ctrl.observe(robot.sensors(), ref.frame(0))]
    actions = [ctrl.act(obs[0], 0)]
    qpos, qvel, errors, termination = [], [], {k: [] for k in metrics.METRICS}, ""
    for frame in range(1, ref.frames):
        robot.step(ctrl.targets(actions[-1]))
        pose, target = robot.pose(), ref.frame(frame)
        for k, v in metrics.frame_errors(pose, target, layout).items():
            errors[k].append(v)
        qpos.append(robot.data.qpos.copy())
        qvel.append(robot.data.qvel.copy())
        fired = metrics.terminations(pose, target, layout, config["terminations"])
        fired["nonfinite"] = not robot.finite()
        obs.append(ctrl.observe(robot.sensors(), target))
        actions.append(ctrl.act(obs[-1], frame))
        if any(fired.values()):
            termination = next(k for k, v in fired.items() if v)
            break
    summary = metrics.summarize(errors, not termination, termination, ref.frames, control["control_dt"])
    return Episode(obs=np.stack(obs), actions=np.stack(actions), qpos0=qpos0, qpos=np.stack(qpos),
                   qvel=np.stack(qvel), errors=errors, success=not termination, termination=termination,
                   summary=summary)
