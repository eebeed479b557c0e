"""The K-step guided sampler: one jit-compiled XLA program, batched over robots.

``sample(model, history, key, guidance=None, keyframes=None) -> Plan``. Starting from pure noise for the
future tokens (the history clamped, at level 0), for k = K .. 1 (one ``lax.scan``):

1. x0_hat = model(x_k, levels): levels are k for the free tokens and 0 for the clamped ones;
2. guidance (if given, and where ``guidance.steps[k - 1]``): x0_hat <- x0_hat - w grad_x0 G(x0_hat), where G is
   the cost of the DECODED plan (states in metres in the replanning character frame, actions in the dataset's
   units); ``jax.grad`` differentiates through the inverse normalization and emphasis projection;
3. the clamped tokens (history, keyframes) are put back into x0_hat;
4. the DDPM step x_k -> x_{k-1} through the epsilon implied by x0_hat (``schedule.ddpm_step``), the clamped
   tokens kept.

At k = 1 the step returns x0_hat itself, so the plan is the last guided prediction. ``Guidance`` is a pytree
whose cost function is static and whose parameters (goals, obstacles), weight and step mask are leaves:
changing a goal or a weight does not recompile. The interface is documented in ``docs/phase2.md``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from mimic_jax import states as st
from mimic_jax.diffusion.model import DiffusionModel
from mimic_jax.diffusion.normalize import decode_actions, decode_states, encode_actions, encode_states
from mimic_jax.diffusion.objective import Tokens
from mimic_jax.diffusion.schedule import ddpm_step


class History(NamedTuple):
    """What the controller has seen, per robot [B, ...]; global dims in the character frame of s_t."""

    states: jnp.ndarray  # [B, N + 1, D] s_{t-N} .. s_t, metres
    actions: jnp.ndarray  # [B, N, A] a_{t-N} .. a_{t-1}
    frame: st.Frame  # [B] that frame in the world (origin [B, 3], yaw [B, 4])


class Plan(NamedTuple):
    """A sampled future, per robot; global dims in the character frame of s_t."""

    states: jnp.ndarray  # [B, H + 1, D] s_t (as given) .. s_{t+H}, metres
    actions: jnp.ndarray  # [B, H + 1, A] a_t .. a_{t+H}; a controller executes a_t


class CostInput(NamedTuple):
    """What a guidance cost sees, for ONE robot."""

    states: jnp.ndarray  # [H + 1, D] s_t .. s_{t+H}, metres, in the replanning character frame
    actions: jnp.ndarray  # [H + 1, A] a_t .. a_{t+H}
    frame: st.Frame  # the replanning frame in the world: origin [3], yaw [4]


class Keyframes(NamedTuple):
    """Future states to clamp (inpainting), per robot."""

    mask: jnp.ndarray  # [B, H] bool over s_{t+1} .. s_{t+H}
    states: jnp.ndarray  # [B, H, D] metres, in the replanning character frame (ignored where not masked)


@struct.dataclass
class Guidance:
    """x0_hat <- x0_hat - weight * steps[k - 1] * grad G(x0_hat), G(x) = sum over robots of cost(CostInput, params).

    ``params`` is shared by all robots unless ``per_robot`` (then every leaf has a leading robot axis)."""

    params: Any
    weight: jnp.ndarray  # scalar
    steps: jnp.ndarray  # [K] bool (or float scale): steps[k - 1] for level k
    cost: Callable[[CostInput, Any], jnp.ndarray] = struct.field(pytree_node=False)
    per_robot: bool = struct.field(pytree_node=False, default=False)


def make_guidance(cost, params, weight: float, levels: int, *, last: int | None = None, per_robot: bool = False
                  ) -> Guidance:
    """Guidance at every level, or only at the ``last`` levels (k = 1 .. last) if given."""
    k = jnp.arange(1, levels + 1)
    steps = jnp.ones(levels, bool) if last is None else k <= last
    return Guidance(params=params, weight=jnp.asarray(weight, jnp.float32), steps=steps, cost=cost,
                    per_robot=per_robot)


def _decode(model: DiffusionModel, x: Tokens) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Tokens -> (states [B, H+1, D] metres, actions [B, H+1, A]) of the steps t .. t+H."""
    n = model.cfg.model.history
    return decode_states(model.normalizer, x.states[:, n:]), decode_actions(model.normalizer, x.actions[:, n:])


def _guide(model: DiffusionModel, guidance: Guidance, x0: Tokens, frame: st.Frame, k) -> Tokens:
    def total(x):
        states, actions = _decode(model, x)
        axes = 0 if guidance.per_robot else None
        costs = jax.vmap(guidance.cost, in_axes=(0, axes))(CostInput(states, actions, frame), guidance.params)
        return jnp.sum(costs)

    grad = jax.grad(total)(x0)
    w = guidance.weight * guidance.steps[k - 1]
    return jax.tree.map(lambda x, g: x - w * g, x0, grad)


class _Clamp(NamedTuple):
    """Clean values and where they hold, over the whole S-step sequence."""

    values: Tokens
    states: jnp.ndarray  # [B, S] bool
    actions: jnp.ndarray  # [B, S] bool

    def apply(self, x: Tokens) -> Tokens:
        return Tokens(jnp.where(self.states[..., None], self.values.states, x.states),
                      jnp.where(self.actions[..., None], self.values.actions, x.actions))


def _clamp(model: DiffusionModel, history: History, keyframes: Keyframes | None) -> _Clamp:
    cfg, norm = model.cfg.model, model.normalizer
    b, n, h = history.states.shape[0], cfg.history, cfg.horizon
    future_s = jnp.zeros((b, h, norm.projected_size))
    future_mask = jnp.zeros((b, h), bool)
    if keyframes is not None:
        future_s = jnp.where(keyframes.mask[..., None], encode_states(norm, keyframes.states), 0.0)
        future_mask = keyframes.mask
    states = jnp.concatenate([encode_states(norm, history.states), future_s], axis=1)
    actions = jnp.concatenate([encode_actions(norm, history.actions),
                               jnp.zeros((b, h + 1, history.actions.shape[-1]))], axis=1)
    mask_s = jnp.concatenate([jnp.ones((b, n + 1), bool), future_mask], axis=1)
    mask_a = jnp.concatenate([jnp.ones((b, n), bool), jnp.zeros((b, h + 1), bool)], axis=1)
    return _Clamp(Tokens(states, actions), mask_s, mask_a)


def _sample(model: DiffusionModel, history: History, key, guidance: Guidance | None = None,
            keyframes: Keyframes | None = None, unroll: int = 1) -> Plan:
    """The sampler before jit (see :func:`sample`)."""
    sched, clamp = model.schedule, _clamp(model, history, keyframes)
    k_init, k_steps = jax.random.split(key)
    k_s, k_a = jax.random.split(k_init)
    x = clamp.apply(Tokens(jax.random.normal(k_s, clamp.values.states.shape),
                           jax.random.normal(k_a, clamp.values.actions.shape)))

    def denoise(x: Tokens, step):
        k, key = step
        levels_s, levels_a = jnp.where(clamp.states, 0, k), jnp.where(clamp.actions, 0, k)
        x0 = Tokens(*model.denoise(x.states, x.actions, levels_s, levels_a))
        if guidance is not None:
            x0 = _guide(model, guidance, x0, history.frame, k)
        x0 = clamp.apply(x0)
        z_s, z_a = jax.random.split(key)
        x = Tokens(ddpm_step(sched, x.states, x0.states, k, jax.random.normal(z_s, x.states.shape)),
                   ddpm_step(sched, x.actions, x0.actions, k, jax.random.normal(z_a, x.actions.shape)))
        return clamp.apply(x), None

    levels = sched.levels
    x, _ = jax.lax.scan(denoise, x, (jnp.arange(levels, 0, -1), jax.random.split(k_steps, levels)), unroll=unroll)
    return Plan(*_decode(model, x))


program = jax.jit(_sample, static_argnames="unroll")


def _strong(tree):
    """Leaves as arrays of their own dtype without JAX's weak type, so that a goal or weight given as a Python
    float and one given as an array hit the same compiled program."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def sample(model: DiffusionModel, history: History, key, guidance: Guidance | None = None,
           keyframes: Keyframes | None = None, *, unroll: int = 1) -> Plan:
    """A plan for every robot of ``history`` (module doc): the jitted :data:`program`, compiled once per model
    config, robot count, guidance cost function and keyframe use; deterministic given ``key``.

    ``unroll``: denoising steps per loop iteration (the plan is the same up to rounding). On the H200, all
    K = 20 unrolled made one bfloat16 robot's guided sample 5.70 ms instead of 7.34 ms and float32 no faster
    (6.39 vs 6.31 ms), for about 30 s more compilation (docs/phase2.md): so 1 by default."""
    return program(model, history, key, _strong(guidance), keyframes, unroll=int(unroll))
