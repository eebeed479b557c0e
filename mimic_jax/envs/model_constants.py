"""The constants MuJoCo derives from masses, inertias and armature, recomputed in JAX for edited MJX models.

``mj_setConst`` (MuJoCo C) and ``mujoco_warp``'s ``set_const`` recompute these after such edits; MJX has no
such function, so an MJX model with scaled masses would otherwise keep the nominal ones:

* ``body_subtreemass``: mass of each body's subtree (MJX-Warp and MuJoCo C divide by it for ``subtree_com``);
* ``body_invweight0``: mean diagonal of ``J M^-1 J'`` at ``qpos0`` for each body's centre of mass, translation
  and rotation (the regularization of contacts);
* ``dof_invweight0``: diagonal of ``M^-1`` at ``qpos0``, averaged over the translational and the rotational
  dofs of a free joint (the regularization of joint limits and dry friction);
* ``actuator_acc0``: ``|M^-1 moment|`` per actuator (used by muscles only; kept consistent).

They are computed as ``mj_setConst`` does, at ``qpos0`` with MJX's own kinematics and composite rigid body
algorithm (JAX backend, whatever backend the model steps on); ``tests/test_mismatch.py`` checks them against
``mj_setConst`` (relative 1e-5 in float32). ``dof_M0`` (the diagonal of ``M``), which MuJoCo C also updates,
is used by no MJX backend and is left as it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

INPUT_FIELDS = ("body_mass", "body_inertia", "body_ipos", "body_iquat", "dof_armature")
DERIVED_FIELDS = ("body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0")


def derived_fields(changed) -> tuple[str, ...]:
    """The derived constants that depend on the ``changed`` fields (``body_subtreemass`` on masses only)."""
    changed = set(changed)
    if not changed & set(INPUT_FIELDS):
        return ()
    return (("body_subtreemass",) if "body_mass" in changed else ()) + DERIVED_FIELDS[1:]


def _ancestors(parent: np.ndarray) -> np.ndarray:
    """[nbody, nbody] bool: column c is an ancestor of row b (b itself included)."""
    n = parent.size
    out = np.zeros((n, n), bool)
    for b in range(n):
        c = b
        while True:
            out[b, c] = True
            if c == 0:
                break
            c = int(parent[c])
    return out


def _dof_average(m, diag):
    """``diag`` [nv] with each free joint's translational and rotational dofs replaced by their mean (and a
    ball joint's three by theirs), as MuJoCo stores ``dof_invweight0``."""
    out = diag
    for j in range(m.njnt):
        adr = int(m.jnt_dofadr[j])
        groups = {int(mujoco.mjtJoint.mjJNT_FREE): ((0, 3), (3, 6)), int(mujoco.mjtJoint.mjJNT_BALL): ((0, 3),)}
        for lo, hi in groups.get(int(m.jnt_type[j]), ()):
            out = out.at[adr + lo:adr + hi].set(jnp.mean(diag[adr + lo:adr + hi]))
    return out


def _body_invweight(m, d, minv):
    """[nbody, 2] mean diagonal of J M^-1 J' (translation, rotation) of each body's centre of mass."""
    static = np.asarray(m.body_weldid) == 0  # the world and bodies welded to it
    mask = _ancestors(np.asarray(m.body_parentid))[:, np.asarray(m.dof_bodyid)][..., None]  # [nbody, nv, 1]
    offset = d.xipos - d.subtree_com[np.asarray(m.body_rootid)]
    ang, lin = d.cdof[None, :, :3], d.cdof[None, :, 3:]
    jacp = (lin + jnp.cross(ang, offset[:, None, :])) * mask
    jacr = ang * mask
    trans = jnp.einsum("bvi,vw,bwi->b", jacp, minv, jacp) / 3.0
    rot = jnp.einsum("bvi,vw,bwi->b", jacr, minv, jacr) / 3.0
    tiny = mujoco.mjMINVAL
    # as MuJoCo: a body that cannot translate (or rotate) takes the other weight
    trans, rot = (jnp.where((trans < tiny) & (rot > tiny), rot, trans),
                  jnp.where((rot < tiny) & (trans > tiny), trans, rot))
    return jnp.where(static[:, None], 0.0, jnp.stack([trans, rot], axis=-1))


def _derived(m, fields: dict) -> dict:
    m = m.tree_replace(fields)
    d = mjx.make_data(m)  # qpos = qpos0
    d = mjx.crb(m, mjx.com_pos(m, mjx.kinematics(m, d)))
    minv = jnp.linalg.inv(mjx.full_m(m, d))
    subtree = jnp.asarray(_ancestors(np.asarray(m.body_parentid)).T, m.body_mass.dtype) @ m.body_mass
    dofs = np.asarray(m.jnt_dofadr)[np.asarray(m.actuator_trnid[:, 0])]
    gear = m.actuator_gear[:, 0]
    acc0 = jnp.linalg.norm(minv[:, dofs] * gear[None, :], axis=0)
    return {"body_subtreemass": subtree, "body_invweight0": _body_invweight(m, d, minv),
            "dof_invweight0": _dof_average(m, jnp.diag(minv)), "actuator_acc0": acc0}


derived_constants = jax.jit(_derived)
derived_constants.__doc__ = """``DERIVED_FIELDS`` of the JAX-backend model ``m`` with ``fields`` (``INPUT_FIELDS``,
unbatched) in place of its own."""

batched_derived_constants = jax.jit(jax.vmap(_derived, in_axes=(None, 0)))
batched_derived_constants.__doc__ = "As :func:`derived_constants` for fields with a leading batch axis."
