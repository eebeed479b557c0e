"""Run by tests/test_multidevice.py: two processes, one CPU device each, through ``mimic_jax.distributed``.

Parent (no launcher variables set): ``python multiprocess_check.py OUT.npz`` spawns two copies of itself.
Child: joins the process group, trains one iteration on the same global batch and settings as
``multidevice_check.py``'s two-device trainer, and process 0 writes the parameters and metrics to OUT.npz.
"""

import sys

from mimic_jax import distributed


def child(out_path: str) -> int:
    distributed.initialize_from_env()
    import jax
    import numpy as np

    from multidevice_check import settings, standing_library  # same folder
    from mimic_jax.ppo.trainer import TrainConfig, Trainer

    assert jax.process_count() == 2 and len(jax.devices()) == 2 and len(jax.local_devices()) == 1
    env, ppo = settings()
    trainer = Trainer(TrainConfig(env=env, ppo=ppo, num_devices=2), standing_library())
    carry, metrics = trainer.train_step(trainer.init())
    params = jax.device_get(trainer.local_train_state(carry).params)
    if jax.process_index() == 0:
        leaves = {f"leaf_{i:03d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))}
        np.savez(out_path, loss=float(metrics["total_loss"]), reward=float(metrics["rollout/reward_per_step"]),
                 **leaves)
    return 0


if __name__ == "__main__":
    if distributed.is_child():
        sys.exit(child(sys.argv[1]))
    sys.exit(distributed.launch([sys.executable, __file__, sys.argv[1]], num_processes=2, timeout=1200))
