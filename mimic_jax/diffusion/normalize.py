"""From states in metres to the space the model diffuses in, and back: z-score, then emphasis projection.

A state s [D] (``mimic_jax.states``: 9 global root dims, then the local ones) becomes

    z = (s - mu) / sigma                         (per dim, over re-anchored training windows)
    y = P z,   P = [c E; I]  in R^{(D + G) x D}

where E [G x D] selects the G = 9 global dims (``StateLayout.global_mask``) and c = 6: the root's position,
velocity and rotation appear twice, once scaled by c, so the diffusion loss and noise weigh errors of the
root path (1 + c^2) = 37 times more than a local dim. This is our reading of BeyondMimic's P = [A B; I] with
the weight c on the global dims. P has full column rank, so its pseudo-inverse is a left inverse:

    P^+ = (P^T P)^{-1} P^T,   P^T P = I + c^2 E^T E   (diagonal: 1 + c^2 on global dims, 1 elsewhere),
    z = P^+ y:   z_g = (c y_top + y_g) / (1 + c^2),   z_l = y_l,

which is also the least-squares z of a y off the range of P (a noisy prediction). ``decode_states`` is that,
then s = sigma z + mu: costs written on decoded states are in metres, and their gradients flow back through
both maps. Actions are only z-scored.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Normalizer:
    """Statistics (leaves) and the projection's static description."""

    state_mean: jnp.ndarray  # [D]
    state_std: jnp.ndarray  # [D]
    action_mean: jnp.ndarray  # [A]
    action_std: jnp.ndarray  # [A]
    global_dims: tuple[int, ...] = struct.field(pytree_node=False, default=())
    emphasis: float = struct.field(pytree_node=False, default=6.0)

    @property
    def state_size(self) -> int:
        return int(self.state_mean.shape[-1])

    @property
    def action_size(self) -> int:
        return int(self.action_mean.shape[-1])

    @property
    def projected_size(self) -> int:
        """D + G: the size of a state token."""
        return self.state_size + len(self.global_dims)


def fit_normalizer(states, actions, global_mask, *, emphasis: float, std_floor: float) -> Normalizer:
    """Mean and standard deviation per dim over every leading axis of ``states`` [..., D] / ``actions`` [..., A]."""
    states = np.asarray(states, np.float64).reshape(-1, np.shape(states)[-1])
    actions = np.asarray(actions, np.float64).reshape(-1, np.shape(actions)[-1])
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return Normalizer(state_mean=f32(states.mean(0)), state_std=f32(np.maximum(states.std(0), std_floor)),
                      action_mean=f32(actions.mean(0)), action_std=f32(np.maximum(actions.std(0), std_floor)),
                      global_dims=tuple(int(i) for i in np.flatnonzero(global_mask)), emphasis=float(emphasis))


def encode_states(norm: Normalizer, states):
    """States in metres [..., D] -> y = P z [..., D + G]."""
    z = (states - norm.state_mean) / norm.state_std
    g = np.asarray(norm.global_dims, np.int32)
    return jnp.concatenate([norm.emphasis * z[..., g], z], axis=-1)


def decode_states(norm: Normalizer, y):
    """y [..., D + G] -> states in metres [..., D], through the pseudo-inverse of P."""
    g = np.asarray(norm.global_dims, np.int32)
    c, top, z = norm.emphasis, y[..., :len(g)], y[..., len(g):]
    z = z.at[..., g].set((c * top + z[..., g]) / (1.0 + c * c))
    return z * norm.state_std + norm.state_mean


def encode_actions(norm: Normalizer, actions):
    return (actions - norm.action_mean) / norm.action_std


def decode_actions(norm: Normalizer, y):
    return y * norm.action_std + norm.action_mean


def projection_matrix(norm: Normalizer) -> np.ndarray:
    """P [D + G, D] as a matrix (for tests and docs; the code above never forms it)."""
    d, g = norm.state_size, np.asarray(norm.global_dims)
    top = np.zeros((len(g), d))
    top[np.arange(len(g)), g] = norm.emphasis
    return np.concatenate([top, np.eye(d)], axis=0)
