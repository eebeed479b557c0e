"""Whole-body inverse kinematics for the G1: weighted damped least squares on MuJoCo Jacobians.

Unknowns per frame: the floating base (6) plus the legs and waist (15); the arms and wrists are set
directly from the posture reference (their motion is designed in joint space). Tasks, by weight:
both feet (sole-centre position and orientation: flat with a given yaw, or a given toe-down pitch), the
whole-body centre of mass (x, y), the pelvis height (or the COM height), pelvis and torso orientation
(roll, pitch, yaw targets), and a light pull toward a reference posture (the default "knees bent" pose)
that settles the null space. Joint limits are hard
box constraints (the soft limits of the tracking task, 90 % of the range): after every Gauss-Newton step
the joints are clamped and clamped joints leave the next step (a small active-set method).

Each frame starts from the previous frame's solution and iterates to convergence, so smooth targets give
smooth joint trajectories. Only ``mujoco`` and ``numpy`` are used: no randomness, fixed iteration order,
and linear algebra without BLAS (``linalg.py``) so that the result has the same bits on every machine.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.motion.linalg import gram, mat_t_vec, solve_spd

SOFT_LIMIT_FRACTION = 0.9
SOLE_BELOW_SITE = -0.002  # the foot sites sit 2 mm below the sole (lowest capsule point), at z = -0.037
SOLVED_JOINTS = slice(0, 15)  # legs (12) and waist (3) in JOINT_NAMES order
FOOT_SITES = ("left_foot", "right_foot")
MAX_STEP = 0.2  # largest change of any coordinate in one Gauss-Newton step (rad or m)


@dataclasses.dataclass
class Targets:
    """Per-frame IK targets (T frames). Angles in radians; the foot ``pos`` z is the sole height."""

    foot_pos: np.ndarray  # [T, 2, 3]
    foot_yaw: np.ndarray  # [T, 2]
    com_xy: np.ndarray  # [T, 2]
    pelvis_z: np.ndarray  # [T]
    pelvis_rpy: np.ndarray  # [T, 3]
    torso_rpy: np.ndarray  # [T, 3]
    posture: np.ndarray  # [T, 29] joint reference (arms are taken as is)
    foot_pitch: np.ndarray | None = None  # [T, 2], default flat
    com_z: np.ndarray | None = None  # [T]: if given, the COM height is tracked instead of ``pelvis_z`` (not where NaN)

    @property
    def num_frames(self) -> int:
        return int(self.com_xy.shape[0])


@dataclasses.dataclass(frozen=True)
class Weights:
    foot_pos: float = 1000.0
    foot_rot: float = 300.0
    com: float = 300.0
    pelvis_z: float = 100.0
    pelvis_rot: tuple[float, float, float] = (30.0, 30.0, 30.0)  # world x, y, z axes (after yaw)
    torso_rot: tuple[float, float, float] = (30.0, 30.0, 30.0)
    posture_legs: float = 1e-3
    posture_waist: float = 1.0
    damping: float = 1e-6


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector taking ``current`` to ``target`` (both 3x3)."""
    quat = np.empty(4)
    relative = np.sum(target[:, :, None] * current.T[None, :, :], axis=1)  # target @ current.T without BLAS
    mujoco.mju_mat2Quat(quat, relative.reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


def soft_limits(fraction: float = SOFT_LIMIT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    table = g1.joint_table()
    mid, half = 0.5 * (table.lower + table.upper), 0.5 * (table.upper - table.lower)
    return mid - fraction * half, mid + fraction * half


class WholeBodyIK:
    """Solves ``Targets`` frame by frame; see the module docstring."""

    def __init__(self, model: mujoco.MjModel | None = None, weights: Weights = Weights()):
        self.model = model if model is not None else g1.load_model()
        self.data = mujoco.MjData(self.model)
        self.weights = weights
        m = self.model
        self.sites = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, s) for s in FOOT_SITES]
        self.pelvis, self.torso = g1.body_ids(m, ("pelvis", g1.ANCHOR_BODY))
        self.dofs = np.r_[0:6, 6 + np.arange(g1.NUM_JOINTS)[SOLVED_JOINTS]]
        self.lower, self.upper = soft_limits()
        self._jp, self._jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))

    def _rows(self, tg: Targets, i: int):
        """Stacked task Jacobian [K, nv], error [K] and row weights [K] at frame ``i``."""
        m, d, w = self.model, self.data, self.weights
        jac, err, wts = [], [], []
        for s, site in enumerate(self.sites):
            mujoco.mj_jacSite(m, d, self._jp, self._jr, site)
            goal = tg.foot_pos[i, s] + np.array([0.0, 0.0, SOLE_BELOW_SITE])
            pitch = 0.0 if tg.foot_pitch is None else tg.foot_pitch[i, s]
            rot = rpy_matrix(0.0, pitch, tg.foot_yaw[i, s])
            jac += [self._jp.copy(), self._jr.copy()]
            err += [goal - d.site_xpos[site], rotation_error(rot, d.site_xmat[site].reshape(3, 3))]
            wts += [np.full(3, w.foot_pos), np.full(3, w.foot_rot)]
        mujoco.mj_jacSubtreeCom(m, d, self._jp, self.pelvis)
        jac.append(self._jp[:2].copy())
        err.append(tg.com_xy[i] - d.subtree_com[self.pelvis, :2])
        wts.append(np.full(2, w.com))
        if tg.com_z is not None and np.isfinite(tg.com_z[i]):  # height task on the COM
            jac.append(self._jp[2:3].copy())
            err.append(np.array([tg.com_z[i] - d.subtree_com[self.pelvis, 2]]))
        else:
            mujoco.mj_jacBody(m, d, self._jp, self._jr, self.pelvis)
            jac.append(self._jp[2:3].copy())
            err.append(np.array([tg.pelvis_z[i] - d.xpos[self.pelvis, 2]]))
        wts.append(np.array([w.pelvis_z]))
        for body, rpy, weight in ((self.pelvis, tg.pelvis_rpy[i], w.pelvis_rot),
                                  (self.torso, tg.torso_rpy[i], w.torso_rot)):
            mujoco.mj_jacBody(m, d, self._jp, self._jr, body)
            jac.append(self._jr.copy())
            err.append(rotation_error(rpy_matrix(*rpy), d.xmat[body].reshape(3, 3)))
            wts.append(np.asarray(weight, dtype=np.float64))
        return np.concatenate(jac), np.concatenate(err), np.concatenate(wts)

    def _step(self, tg: Targets, i: int, free: np.ndarray) -> float:
        m, d, w = self.model, self.data, self.weights
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        jac, err, wts = self._rows(tg, i)
        cols = self.dofs[free]
        a = jac[:, cols]
        joints = cols[cols >= 6] - 6
        reg = np.zeros(len(cols))
        reg[cols >= 6] = np.where(joints < 12, w.posture_legs, w.posture_waist)
        pull = np.zeros(len(cols))
        pull[cols >= 6] = tg.posture[i, joints] - d.qpos[7 + joints]
        lhs = gram(a, wts) + np.diag(reg + w.damping)
        rhs = mat_t_vec(a, wts * err) + reg * pull
        dq = np.zeros(m.nv)
        dq[cols] = solve_spd(lhs, rhs)
        dq *= min(1.0, MAX_STEP / max(float(np.max(np.abs(dq))), 1e-12))  # trust region
        mujoco.mj_integratePos(m, d.qpos, dq, 1.0)
        return float(np.max(np.abs(dq)))

    def _clamp(self, free: np.ndarray) -> bool:
        """Clamps the solved joints to the limits; returns True if the set of clamped joints changed."""
        q = self.data.qpos[7:7 + 15]
        lo, hi = self.lower[SOLVED_JOINTS], self.upper[SOLVED_JOINTS]
        at_limit = (q <= lo) | (q >= hi)
        self.data.qpos[7:7 + 15] = np.clip(q, lo, hi)
        new_free = np.concatenate([np.ones(6, dtype=bool), ~at_limit])
        changed = bool(np.any(new_free != free))
        free[:] = new_free
        return changed

    def solve_frame(self, tg: Targets, i: int, iterations: int = 50, tol: float = 1e-10) -> np.ndarray:
        d = self.data
        d.qpos[7:] = np.where(np.arange(g1.NUM_JOINTS) < 15, d.qpos[7:], tg.posture[i])
        free = np.ones(len(self.dofs), dtype=bool)
        for _ in range(iterations):
            size = self._step(tg, i, free)
            changed = self._clamp(free)
            if size < tol and not changed:
                break
        free[:] = True  # a joint may leave its limit on the next frame
        return d.qpos.copy()

    def solve(self, tg: Targets, q0: np.ndarray | None = None) -> np.ndarray:
        """qpos [T, 36] for every frame, warm-started from ``q0`` (default: standing default pose)."""
        if q0 is None:
            q0 = g1.qpos_from(np.array([0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT]), np.array([1.0, 0.0, 0.0, 0.0]),
                              g1.joint_table().default_pos)
        self.data.qpos[:] = q0
        out = np.empty((tg.num_frames, self.model.nq))
        for i in range(tg.num_frames):
            out[i] = self.solve_frame(tg, i)
        return out

    def residuals(self, tg: Targets, qpos: np.ndarray) -> dict[str, float]:
        """Largest task errors over the clip: feet (m, rad), COM (m), pelvis height (m)."""
        worst = {"foot_pos": 0.0, "foot_rot": 0.0, "com": 0.0, "pelvis_z": 0.0}
        for i, q in enumerate(qpos):
            self.data.qpos[:] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            _, err, _ = self._rows(tg, i)
            parts = {"foot_pos": np.r_[err[0:3], err[6:9]], "foot_rot": np.r_[err[3:6], err[9:12]],
                     "com": err[12:14], "pelvis_z": err[14:15]}
            for k, v in parts.items():
                worst[k] = max(worst[k], float(np.max(np.abs(v))))
        return worst
