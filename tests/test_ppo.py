"""Fast checks of the PPO building blocks against hand-computed numbers and a 1-step bandit."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.training.agents.ppo import losses as brax_losses

from mimic_jax.ppo import (
    PPOConfig,
    Rollout,
    adaptive_lr,
    clipped_surrogate_loss,
    clipped_value_loss,
    compute_gae,
    init_train_state,
    make_networks,
    normal_entropy,
    normal_kl,
    normal_log_prob,
    ppo_loss,
    prepare_batch,
    sgd_update,
    update_normalizer,
)

SMALL = PPOConfig(num_envs=256, unroll_length=1, hidden_sizes=(32, 32))
ACTOR_OBS, CRITIC_OBS, ACTIONS = 3, 4, 2


def test_gae_hand_example():
    """T=3, gamma=0.5, lambda=0.5, r=1, V=(1,2,3), V(s_T)=4; gamma*lambda = 0.25.

    col 0 nothing done:        deltas (1, 0.5, 0)              A = (1.125, 0.5, 0)
    col 1 terminated at t=1:   delta_1 = 1 - 2 = -1            A = (1 - 0.25, -1, 0) = (0.75, -1, 0)
    col 2 truncated at t=1, V(s_final)=6: r'_1 = 1 + 0.5*6 = 4, delta_1 = 4 - 2 = 2, A = (1.5, 2, 0)
    col 3 terminated at t=2 (bootstrap ignored): delta_2 = 1 - 3 = -2, A_1 = 0.5 - 0.5 = 0, A = (1, 0, -2)
    """
    ones = jnp.ones((3, 4))
    values = jnp.array([1.0, 2.0, 3.0])[:, None] * ones
    terminated = jnp.zeros((3, 4)).at[1, 1].set(1.0).at[2, 3].set(1.0)
    truncated = jnp.zeros((3, 4)).at[1, 2].set(1.0)
    truncation_values = jnp.zeros((3, 4)).at[1, 2].set(6.0)
    adv, ret = compute_gae(
        ones, values, jnp.full((4,), 4.0), terminated, truncated, truncation_values, gamma=0.5, lam=0.5
    )
    expected = np.array([[1.125, 0.75, 1.5, 1.0], [0.5, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, -2.0]])
    np.testing.assert_allclose(adv, expected, atol=1e-6)
    np.testing.assert_allclose(ret, expected + np.asarray(values), atol=1e-6)
    # rsl_rl's approximation (no truncation_values): r'_1 = 1 + 0.5 * V(s_1) = 2, delta_1 = 0, A = (1, 0, 0).
    adv_rsl, _ = compute_gae(ones, values, jnp.full((4,), 4.0), terminated, truncated, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(adv_rsl[:, 2], [1.0, 0.0, 0.0], atol=1e-6)


def test_gae_matches_brax_without_truncation():
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    rewards, values = jax.random.normal(k1, (7, 5)), jax.random.normal(k2, (7, 5))
    bootstrap = jax.random.normal(k3, (5,))
    terminated = (jax.random.uniform(k4, (7, 5)) < 0.3).astype(jnp.float32)
    adv, ret = compute_gae(
        rewards, values, bootstrap, terminated, jnp.zeros_like(terminated), gamma=0.99, lam=0.95
    )
    vs, _ = brax_losses.compute_gae(
        jnp.zeros_like(terminated), terminated, rewards, values, bootstrap, lambda_=0.95, discount=0.99
    )
    np.testing.assert_allclose(ret, vs, atol=1e-5)
    np.testing.assert_allclose(adv, vs - values, atol=1e-5)


def test_clipped_surrogate_hand_example():
    """rho = (1.5, 0.5, 1.1, 0.7), A = (1, 1, -1, -1), eps = 0.2.

    min(rho A, clip(rho) A) = (1.2, 0.5, -1.1, -0.8) -> loss = -(-0.2 / 4) = 0.05;
    |rho - 1| > 0.2 for rho = 1.5, 0.5, 0.7 -> clip fraction 0.75.
    """
    ratio = jnp.array([1.5, 0.5, 1.1, 0.7])
    loss, frac = clipped_surrogate_loss(jnp.log(ratio), jnp.zeros(4), jnp.array([1.0, 1.0, -1.0, -1.0]), 0.2)
    assert float(loss) == pytest.approx(0.05, abs=1e-6)
    assert float(frac) == pytest.approx(0.75)


def test_clipped_value_loss_hand_example():
    """V = (1, 2, 0), V_old = (0.5, 2.5, 0), R = (2, 2, 1), eps = 0.2.

    V_clip = (0.7, 2.3, 0); max((V-R)^2, (V_clip-R)^2) = max(1, 1.69), max(0, 0.09), max(1, 1) -> 2.78 / 3.
    """
    loss = clipped_value_loss(jnp.array([1.0, 2.0, 0.0]), jnp.array([0.5, 2.5, 0.0]), jnp.array([2.0, 2.0, 1.0]), 0.2)
    assert float(loss) == pytest.approx(2.78 / 3.0, abs=1e-6)


def test_adaptive_lr_rule():
    cfg = PPOConfig()
    assert float(adaptive_lr(1e-3, 0.05, cfg)) == pytest.approx(1e-3 / 1.5)
    assert float(adaptive_lr(1e-3, 0.001, cfg)) == pytest.approx(1.5e-3)
    assert float(adaptive_lr(1e-3, 0.01, cfg)) == pytest.approx(1e-3)
    assert float(adaptive_lr(1e-3, 0.0, cfg)) == pytest.approx(1e-3)  # kl == 0: rsl_rl leaves lr alone
    assert float(adaptive_lr(1.2e-5, 1.0, cfg)) == pytest.approx(1e-5)  # clamped to min
    assert float(adaptive_lr(8e-3, 1e-4, cfg)) == pytest.approx(1e-2)  # clamped to max
    assert float(adaptive_lr(1e-3, 1.0, PPOConfig(schedule="fixed"))) == pytest.approx(1e-3)


def test_normal_closed_forms():
    mean, std, x = np.array([0.3, -1.0]), np.array([0.5, 2.0]), np.array([1.0, 0.0])
    log_prob = np.sum(-((x - mean) ** 2) / (2 * std**2) - np.log(std) - 0.5 * math.log(2 * math.pi))
    entropy = np.sum(0.5 + 0.5 * math.log(2 * math.pi) + np.log(std))
    old_mean, old_std = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    kl = np.sum(np.log(std / old_std + 1e-5) + (old_std**2 + (old_mean - mean) ** 2) / (2 * std**2) - 0.5)
    j = functools.partial(jnp.asarray, dtype=jnp.float32)
    assert float(normal_log_prob(j(mean), j(std), j(x))) == pytest.approx(log_prob, rel=1e-5)
    assert float(normal_entropy(j(mean), j(std))) == pytest.approx(entropy, rel=1e-5)
    assert float(normal_kl(j(old_mean), j(old_std), j(mean), j(std))) == pytest.approx(kl, rel=1e-5)


def _obs(key, batch_shape):
    ka, kc = jax.random.split(key)
    return {
        "actor": jax.random.normal(ka, batch_shape + (ACTOR_OBS,)),
        "critic": jax.random.normal(kc, batch_shape + (CRITIC_OBS,)),
    }


def test_init_std_one_and_no_tanh():
    nets = make_networks(ACTOR_OBS, CRITIC_OBS, ACTIONS, SMALL)
    params, norm = nets.init(jax.random.PRNGKey(0)), nets.init_normalizer()
    obs = _obs(jax.random.PRNGKey(1), (64,))
    mean, std = nets.policy_distribution(params, norm, obs)
    np.testing.assert_array_equal(std, np.ones((64, ACTIONS), np.float32))
    head = params.policy["params"]["Dense_0"]
    big_head = {**head, "kernel": head["kernel"] * 1e3}
    big = params.replace(policy={"params": {**params.policy["params"], "Dense_0": big_head}})
    big_mean = nets.deterministic_action(big, norm, obs)
    assert float(jnp.max(jnp.abs(big_mean))) > 10.0  # no squashing
    out = nets.act(big, norm, obs, jax.random.split(jax.random.PRNGKey(2), 64))
    np.testing.assert_allclose(out.log_prob, normal_log_prob(big_mean, std, out.action), rtol=1e-6)
    assert mean.shape == (64, ACTIONS) and nets.value(params, norm, obs).shape == (64,)


def test_ppo_loss_on_policy_batch():
    """With the behaviour policy equal to the current one: rho = 1, KL = d * log(1 + 1e-5), no clipping,
    policy loss = -mean(A), value loss = mean((V - R)^2), entropy = d * (1/2 + log(2 pi)/2) at std 1."""
    nets = make_networks(ACTOR_OBS, CRITIC_OBS, ACTIONS, SMALL)
    params, norm = nets.init(jax.random.PRNGKey(0)), nets.init_normalizer()
    obs = _obs(jax.random.PRNGKey(1), (1, 128))
    out = nets.act(params, norm, obs, _keys(jax.random.PRNGKey(2), (1, 128)))
    rewards = jax.random.normal(jax.random.PRNGKey(3), (1, 128))
    zeros = jnp.zeros((1, 128))
    rollout = Rollout(obs, out.action, out.log_prob, out.mean, out.std, nets.value(params, norm, obs), rewards,
                      jnp.ones((1, 128)), zeros, zeros, jnp.zeros((128,)))
    batch = prepare_batch(rollout, SMALL)
    assert abs(float(jnp.mean(batch.advantages))) < 1e-5
    assert float(jnp.std(batch.advantages, ddof=1)) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(batch.returns, rewards[0], atol=1e-6)  # terminal bandit: R = r
    loss, m = ppo_loss(nets, params, norm, batch, SMALL)
    assert float(m["policy_loss"]) == pytest.approx(-float(jnp.mean(batch.advantages)), abs=1e-5)
    assert float(m["value_loss"]) == pytest.approx(float(jnp.mean((batch.values - batch.returns) ** 2)), rel=1e-5)
    assert float(m["entropy"]) == pytest.approx(ACTIONS * (0.5 + 0.5 * math.log(2 * math.pi)), rel=1e-6)
    # rel 1e-2: float32 rounds 1 + 1e-5
    assert float(m["approx_kl"]) == pytest.approx(ACTIONS * math.log(1 + 1e-5), rel=1e-2)
    assert float(m["clip_fraction"]) == 0.0
    expected = m["policy_loss"] + SMALL.value_loss_coef * m["value_loss"] - SMALL.entropy_coef * m["entropy"]
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def _keys(key, batch_shape):
    """One key per environment, shaped like the batch."""
    return jax.random.split(key, math.prod(batch_shape)).reshape(batch_shape + (2,))


def _bandit_rollout(nets, state, key, num_envs):
    """T=1 bandit: reward = -mean_i (a_i - 0.5)^2, every step terminal."""
    k_obs, k_act = jax.random.split(key)
    obs = _obs(k_obs, (1, num_envs))
    out = nets.act(state.params, state.normalizer, obs, _keys(k_act, (1, num_envs)))
    rewards = -jnp.mean(jnp.square(out.action - 0.5), axis=-1)
    zeros = jnp.zeros((1, num_envs))
    value = nets.value(state.params, state.normalizer, obs)
    return Rollout(obs, out.action, out.log_prob, out.mean, out.std, value, rewards,
                   jnp.ones((1, num_envs), bool), zeros.astype(bool), zeros, jnp.zeros((num_envs,)))


def _expected_reward(nets, state):
    """E[-(a - 0.5)^2] = -((mu - 0.5)^2 + sigma^2), averaged over fixed evaluation observations."""
    mean, std = nets.policy_distribution(state.params, state.normalizer, _obs(jax.random.PRNGKey(99), (512,)))
    return -jnp.mean(jnp.square(mean - 0.5) + jnp.square(std))


def test_sgd_update_improves_bandit():
    """25 iterations x (5 epochs x 4 minibatches) on 256 envs: expected reward goes from about
    -1.25 (mean ~ 0, std 1) to above -0.35, i.e. improves by more than 0.9; no NaN anywhere."""
    nets = make_networks(ACTOR_OBS, CRITIC_OBS, ACTIONS, SMALL)

    def iteration(state, key):
        k_roll, k_sgd = jax.random.split(key)
        state, metrics = sgd_update(nets, state, _bandit_rollout(nets, state, k_roll, SMALL.num_envs), k_sgd, SMALL)
        return state, metrics

    @jax.jit
    def train(key):
        state = init_train_state(nets, key, SMALL)
        before = _expected_reward(nets, state)
        state, metrics = jax.lax.scan(iteration, state, jax.random.split(key, 25))
        return before, _expected_reward(nets, state), state, metrics

    before, after, state, metrics = train(jax.random.PRNGKey(0))
    assert float(before) < -1.0
    assert float(after) > -0.35 and float(after) - float(before) > 0.9
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves((state, metrics)))
    assert int(state.iteration) == 25 and int(state.sgd_steps) == 25 * 20
    assert set(metrics) >= {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "learning_rate"}
    lr = metrics["learning_rate"]
    assert float(jnp.min(lr)) >= SMALL.min_learning_rate * 0.999
    assert float(jnp.max(lr)) <= SMALL.max_learning_rate * 1.001
    np.testing.assert_allclose(state.normalizer.mean["actor"], 0.0, atol=0.05)  # obs ~ N(0, 1)
    np.testing.assert_allclose(state.normalizer.std["critic"], 1.0, atol=0.05)


def test_axis_name_identical_shards_match_single_device():
    """Two vmapped 'devices' with identical data give exactly the single-device update."""
    cfg = PPOConfig(num_envs=64, unroll_length=2, hidden_sizes=(16,), num_epochs=2, num_minibatches=2)
    nets = make_networks(ACTOR_OBS, CRITIC_OBS, ACTIONS, cfg)
    state = init_train_state(nets, jax.random.PRNGKey(0), cfg)
    rollout = _bandit_rollout(nets, state, jax.random.PRNGKey(1), 128)
    rollout = jax.tree.map(lambda x: x.reshape((2, 64) + x.shape[2:]) if x.ndim >= 2 else x[:64], rollout)
    key = jax.random.PRNGKey(2)
    single, m_single = jax.jit(lambda s, r: sgd_update(nets, s, r, key, cfg))(state, rollout)
    stack = lambda t: jax.tree.map(lambda x: jnp.stack([x, x]), t)
    multi_fn = jax.vmap(lambda s, r: sgd_update(nets, s, r, key, cfg, axis_name="d"), axis_name="d")
    multi, m_multi = jax.jit(multi_fn)(stack(state), stack(rollout))
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(multi.params)):
        np.testing.assert_allclose(b[0], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_multi["policy_loss"][0], m_single["policy_loss"], atol=1e-4)
    np.testing.assert_allclose(multi.normalizer.std["actor"][1], single.normalizer.std["actor"], rtol=1e-5)


def test_normalizer_merges_shards_exactly():
    cfg = PPOConfig()
    nets = make_networks(ACTOR_OBS, CRITIC_OBS, ACTIONS, SMALL)
    obs = jax.tree.map(lambda x: 3.0 + 2.0 * x, _obs(jax.random.PRNGKey(0), (2, 5, 7)))
    merged = jax.vmap(lambda o: update_normalizer(nets.init_normalizer(), o, cfg, "d"), axis_name="d")(obs)
    whole = update_normalizer(nets.init_normalizer(), obs, cfg)
    flat = np.asarray(obs["critic"]).reshape(-1, CRITIC_OBS)
    np.testing.assert_allclose(whole.mean["critic"], flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(whole.std["critic"], flat.std(0), rtol=1e-4)
    np.testing.assert_allclose(merged.mean["critic"][0], whole.mean["critic"], rtol=1e-5)
    np.testing.assert_allclose(merged.std["actor"][1], whole.std["actor"], rtol=1e-5)
    const = update_normalizer(nets.init_normalizer(), jax.tree.map(jnp.zeros_like, obs), cfg)
    np.testing.assert_allclose(const.std["actor"], cfg.obs_std_min)  # clamped away from 0


@pytest.mark.slow
def test_one_blown_up_environment_does_not_poison_the_update():
    """One environment's physics blows up in a real rollout (a 1e20 initial velocity): it is reset and
    counted, and the update's parameters, losses and metrics stay finite (0 * NaN in the truncation
    bootstrap and NaN reward terms used to turn every parameter into NaN)."""
    from mimic_jax.envs.config import EnvConfig
    from mimic_jax.motion.library import build_library
    from mimic_jax.ppo.trainer import TrainConfig, Trainer
    from test_checkpoint import standing_clip  # tests/ is on sys.path under pytest

    cfg = TrainConfig(env=EnvConfig(collisions="feet"),
                      ppo=PPOConfig(num_envs=4, unroll_length=4, num_epochs=1, num_minibatches=1, hidden_sizes=(16,)))
    trainer = Trainer(cfg, build_library([standing_clip()], ["stand"]))
    carry = trainer.init()
    bs = carry.envs[0]
    data = bs.env.data.replace(qvel=bs.env.data.qvel.at[0].set(1e20))
    carry = carry.replace(envs=(bs.replace(env=bs.env.replace(data=data)),))
    carry, metrics = trainer.train_step(carry)
    metrics = jax.device_get(metrics)
    assert float(metrics["physics/nonfinite_resets"]) >= 1.0
    assert sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v))) == []
    assert bool(metrics["params_finite"]) and np.isfinite(metrics["total_loss"])
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(carry.train_state))
    assert np.all(np.isfinite(np.asarray(carry.envs[0].env.data.qvel)))  # the blown-up env was reset
