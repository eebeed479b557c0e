"""Run by tests/test_multidevice.py in a subprocess with two forced CPU devices.

Trains one iteration on the same global batch two ways, one device and two devices (per-device rollouts +
SPMD update), on a clip so short that every environment reaches its end and restarts at a freshly drawn
start during the unroll (resets exercise the per-environment draws and the sampler counts across devices).
Prints the largest parameter difference, the number of resets and whether the two devices' environments
drew different starts and reset noise.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.envs.config import EnvConfig, PushConfig, RandomizationConfig
from mimic_jax.motion.clip import make_clip
from mimic_jax.motion.library import build_library
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig, Trainer

CLIP_FRAMES = 6  # every episode reaches the clip end within the 8-step unroll


def standing_library(frames=CLIP_FRAMES):
    root = np.tile([0.0, 0.0, 0.76], (frames, 1))
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (frames, 1))
    joints = np.tile(g1.joint_table().default_pos, (frames, 1))
    return build_library([make_clip(root, quat, joints)], ["stand"])


def settings():
    no_push = PushConfig(enabled=False)
    env = EnvConfig(collisions="feet", randomization=RandomizationConfig(enabled=False, push=no_push))
    ppo = PPOConfig(num_envs=8, unroll_length=8, num_epochs=2, num_minibatches=1, hidden_sizes=(32, 32))
    return env, ppo


def _differ(a, b) -> bool:
    return bool(np.any(np.asarray(a) != np.asarray(b)))


def draws_differ(carry) -> dict:
    """Environment j of device 0 against environment j of device 1: start frames and reset noise."""
    e0, e1 = (jax.device_get(e.env) for e in carry.envs)
    return {"rng": _differ(e0.rng, e1.rng), "qpos": _differ(e0.data.qpos, e1.data.qpos),
            "frames": _differ(e0.frame, e1.frame)}


def resets(trainer, carry) -> float:
    """Restarts during the iteration: one clip of one bin, so every restart adds 1 to the bin's episode
    count, which starts at 0 and is smoothed once with rate alpha."""
    return float(np.sum(jax.device_get(carry.envs[0].sampler.ep_count))) / trainer.cfg.sampler.ema_alpha


def main():
    assert len(jax.devices()) == 2, jax.devices()
    lib = standing_library()
    env, ppo = settings()
    two = Trainer(TrainConfig(env=env, ppo=ppo, num_devices=2), lib)
    one = Trainer(TrainConfig(env=env, ppo=ppo, num_devices=1), lib)
    carry2 = two.init()
    at_init = draws_differ(carry2)
    # The same global batch on one device: the two shards' env states side by side.
    env_one = jax.tree.map(lambda *xs: jnp.concatenate([jax.device_get(x) for x in xs]), *[e.env for e in carry2.envs])
    carry1 = one.init()
    carry1 = carry1.replace(envs=(carry1.envs[0].replace(env=jax.device_put(env_one, one.devices[0])),),
                            key=jax.device_get(carry2.key),
                            train_state=jax.device_get(two.local_train_state(carry2)))
    carry1 = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, carry1)
    out1, m1 = one.train_step(carry1)
    out2, m2 = two.train_step(carry2)
    p1 = jax.device_get(out1.train_state.params)
    p2 = jax.device_get(two.local_train_state(out2).params)
    diff = lambda a, b: max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(p1))
    env_two = jax.tree.map(lambda *xs: np.concatenate([jax.device_get(x) for x in xs]), *[e.env for e in out2.envs])
    if len(sys.argv) > 1:  # the two-device parameters, for the two-process comparison
        np.savez(sys.argv[1], loss=float(m2["total_loss"]), reward=float(m2["rollout/reward_per_step"]),
                 **{f"leaf_{i:03d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(p2))})
    print(json.dumps({"split_vs_one": diff(p1, p2), "param_scale": scale,
                      "loss_one": float(m1["total_loss"]), "loss_split": float(m2["total_loss"]),
                      "reward_one": float(m1["rollout/reward_per_step"]),
                      "reward_split": float(m2["rollout/reward_per_step"]),
                      "resets_one": resets(one, out1), "resets_split": resets(two, out2),
                      "env_state_vs_one": diff(jax.device_get(out1.envs[0].env.data.qpos), env_two.data.qpos),
                      "sampler_vs_one": diff(jax.device_get(out1.envs[0].sampler.ep_count),
                                             jax.device_get(out2.envs[0].sampler.ep_count)),
                      "differ_at_init": at_init, "differ_after": draws_differ(out2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
