"""Run by tests/test_multidevice.py in a subprocess with two forced CPU devices.

Trains one iteration on the same global batch three ways and prints the largest parameter difference:
one device (fused program), two devices (per-device rollouts + SPMD update), two devices in one SPMD
program (``fuse_devices``).
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from mimic_jax.assets import g1
from mimic_jax.envs.config import EnvConfig, RandomizationConfig
from mimic_jax.motion.clip import make_clip
from mimic_jax.motion.library import build_library
from mimic_jax.ppo.config import PPOConfig
from mimic_jax.ppo.trainer import TrainConfig, Trainer


def standing_library(frames=400):
    root = np.tile([0.0, 0.0, 0.76], (frames, 1))
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (frames, 1))
    joints = np.tile(g1.joint_table().default_pos, (frames, 1))
    return build_library([make_clip(root, quat, joints)], ["stand"])


def settings():
    env = EnvConfig(collisions="feet", randomization=RandomizationConfig(enabled=False, push=False))
    ppo = PPOConfig(num_envs=8, unroll_length=4, num_epochs=2, num_minibatches=1, hidden_sizes=(32, 32))
    return env, ppo


def main():
    assert len(jax.devices()) == 2, jax.devices()
    lib = standing_library()
    env, ppo = settings()
    two = Trainer(TrainConfig(env=env, ppo=ppo, num_devices=2), lib)
    one = Trainer(TrainConfig(env=env, ppo=ppo, num_devices=1), lib)
    carry2 = two.init()
    # The same global batch on one device: the two shards' env states side by side.
    env_one = jax.tree.map(lambda *xs: jnp.concatenate([jax.device_get(x) for x in xs]), *[e.env for e in carry2.envs])
    carry1 = one.init()
    carry1 = carry1.replace(envs=(carry1.envs[0].replace(env=jax.device_put(env_one, one.devices[0])),),
                            key=jax.device_get(carry2.key),
                            train_state=jax.device_get(two.local_train_state(carry2)))
    carry1 = jax.tree.map(lambda x: x.copy() if isinstance(x, jax.Array) else x, carry1)
    out1, m1 = one.train_step(carry1)
    out2, m2 = two.train_step(carry2)
    print("split done", flush=True)
    fused = Trainer(TrainConfig(env=env, ppo=ppo, num_devices=2, fuse_devices=True), lib)
    out3, m3 = fused.train_step(fused.init())
    p1 = jax.device_get(out1.train_state.params)
    p2 = jax.device_get(two.local_train_state(out2).params)
    p3 = jax.device_get(fused.local_train_state(out3).params)
    diff = lambda a, b: max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(p1))
    if len(sys.argv) > 1:  # the two-device parameters, for the two-process comparison
        np.savez(sys.argv[1], loss=float(m2["total_loss"]), reward=float(m2["rollout/reward_per_step"]),
                 **{f"leaf_{i:03d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(p2))})
    print(json.dumps({"split_vs_one": diff(p1, p2), "fused_vs_one": diff(p1, p3), "param_scale": scale,
                      "loss_one": float(m1["total_loss"]), "loss_split": float(m2["total_loss"]),
                      "loss_fused": float(m3["total_loss"]),
                      "reward_one": float(m1["rollout/reward_per_step"]),
                      "reward_split": float(m2["rollout/reward_per_step"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
