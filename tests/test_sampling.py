"""Tests of the adaptive start-frame sampler: hand-computed maths and a stub environment."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax import sampling
from mimic_jax.sampling import SamplerConfig


def _with_rates(state, rates, episodes=None):
    """State whose smoothed counts give the failure rates `rates` (episodes default 1 per bin)."""
    episodes = np.ones(len(rates)) if episodes is None else np.asarray(episodes, np.float64)
    return state.replace(
        ep_count=jnp.asarray(episodes, jnp.float32),
        fail_count=jnp.asarray(np.asarray(rates) * episodes, jnp.float32),
    )


def test_bin_layout_and_partial_last_bin():
    cfg = SamplerConfig()
    state = sampling.init_sampler(np.array([100, 101, 1, 49]), 50.0, cfg)
    np.testing.assert_array_equal(state.num_bins, [2, 3, 1, 1])
    np.testing.assert_array_equal(state.bin_offset, [0, 2, 5, 6])
    np.testing.assert_array_equal(state.bin_motion, [0, 0, 1, 1, 1, 2, 3])
    np.testing.assert_array_equal(state.bin_local, [0, 1, 0, 1, 2, 0, 0])
    np.testing.assert_array_equal(state.clip_bins, [[0, 1, 1], [2, 3, 4], [5, 5, 5], [6, 6, 6]])
    motion = jnp.array([0, 0, 0, 1, 1, 1, 3])
    frame = jnp.array([0, 49, 50, 99, 100, 5000, 48])
    bins = sampling.bin_of_frame(state, motion, frame)
    np.testing.assert_array_equal(bins, [0, 0, 1, 3, 4, 4, 6])


def test_bin_count_matches_ceil_and_skips_empty_tail_bin():
    frames = np.array([1, 29, 30, 31, 300])
    state = sampling.init_sampler(frames, 30.0, SamplerConfig())
    np.testing.assert_array_equal(state.num_bins, np.ceil(frames / 30.0))
    # B = 7.5 frames: ceil(8 / 7.5) = 2 would make a bin [7.5, 15) with no frame below 8.
    odd = sampling.init_sampler(np.array([8, 15]), 25.0, SamplerConfig(bin_size_seconds=0.3))
    np.testing.assert_array_equal(odd.num_bins, [1, 2])


def test_kernel_hand_computed():
    cfg = SamplerConfig(kernel_gamma=0.5, kernel_size=2, uniform_mix=0.0)
    state = _with_rates(sampling.init_sampler(np.array([200]), 50.0, cfg), [0, 1, 0, 0])
    # k = [1, 0.5] / 1.5; p_0 = 0.5 / 1.5, p_1 = 1 / 1.5, p_2 = p_3 = 0.
    p = sampling.bin_probabilities(state, cfg)
    np.testing.assert_allclose(p, [1 / 3, 2 / 3, 0, 0], atol=1e-6)
    mixed = dataclasses.replace(cfg, uniform_mix=0.1)
    expected = [0.025 + 0.9 / 3, 0.025 + 0.9 * 2 / 3, 0.025, 0.025]
    np.testing.assert_allclose(sampling.bin_probabilities(state, mixed), expected, atol=1e-6)


def test_kernel_replicate_padding_stays_inside_clip():
    cfg = SamplerConfig(kernel_gamma=0.5, kernel_size=3, uniform_mix=0.0)
    state = sampling.init_sampler(np.array([200, 100, 150]), 50.0, cfg)
    state = _with_rates(state, [0, 0, 0, 1, 0, 0, 1, 0, 0])
    p = np.asarray(sampling.bin_probabilities(state, cfg))
    # Clip 0: r = [0,0,0,1] padded with r_3: [0, .25, .5+.25, 1+.5+.25] / 2.75.
    np.testing.assert_allclose(p[:4], np.array([0, 0.25, 0.75, 1.75]) / 2.75, atol=1e-6)
    # Clip 1: all zero rates -> uniform, untouched by clip 2's failing first bin.
    np.testing.assert_allclose(p[4:6], [0.5, 0.5], atol=1e-6)
    # Clip 2: r = [1, 0, 0] -> [1, 0, 0].
    np.testing.assert_allclose(p[6:], [1, 0, 0], atol=1e-6)
    sums = jax.ops.segment_sum(jnp.asarray(p), state.bin_motion, num_segments=3)
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)


def test_unvisited_bins_take_clip_mean_rate():
    cfg = SamplerConfig(kernel_size=1, uniform_mix=0.0)
    state = sampling.init_sampler(np.array([200]), 50.0, cfg)
    state = _with_rates(state, [0.5, 0.0, 0.0, 0.0], episodes=[1.0, 3.0, 0.0, 0.0])
    # rbar = 0.5 / 4 = 0.125 fills bins 2 and 3.
    np.testing.assert_allclose(sampling.bin_failure_rates(state, cfg), [0.5, 0, 0.125, 0.125])
    p = sampling.bin_probabilities(state, cfg)
    np.testing.assert_allclose(p, [2 / 3, 0, 1 / 6, 1 / 6], atol=1e-6)


def test_failure_attribution_both_credit_rules():
    started = jnp.array([2, 0, 3, 3])
    failed = jnp.array([True, False, True, True])
    end_bin = jnp.array([4, 1, 3, 3])
    done = jnp.array([True, True, False, True])  # env 2 has not ended: ignored.
    by_failure = SamplerConfig(credit="failure")
    state = sampling.init_sampler(np.array([100, 150]), 50.0, by_failure)  # bins [2, 3]
    ep, fail = sampling.sampler_counts(state, by_failure, started, failed, end_bin, done)
    np.testing.assert_array_equal(ep, [1, 1, 1, 2, 1])  # exposure: bins 2..4, 0..1, 3
    np.testing.assert_array_equal(fail, [0, 0, 0, 1, 1])
    by_start = SamplerConfig(credit="start")
    ep, fail = sampling.sampler_counts(state, by_start, started, failed, end_bin, done)
    np.testing.assert_array_equal(ep, [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(fail, [0, 0, 1, 1, 0])


def test_ema_after_three_updates():
    cfg = SamplerConfig(ema_alpha=0.1, credit="start")
    state = sampling.init_sampler(np.array([100]), 50.0, cfg)
    started, failed, done = jnp.array([0, 0, 1]), jnp.array([True, False, False]), jnp.ones(3, bool)
    args = (started, failed, started, done)
    for _ in range(3):
        state = sampling.update_sampler(state, cfg, *args)
    warm = 1.0 - 0.9**3  # 0.271
    np.testing.assert_allclose(state.ep_count, [2 * warm, warm], rtol=1e-6)
    np.testing.assert_allclose(state.fail_count, [warm, 0.0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sampling.bin_failure_rates(state, cfg), [0.5, 0.0], atol=1e-6)
    state = sampling.apply_counts(state, cfg, sampling.SamplerCounts(jnp.zeros(2), jnp.zeros(2)))
    np.testing.assert_allclose(state.ep_count, [2 * warm * 0.9, warm * 0.9], rtol=1e-6)


@pytest.mark.parametrize("credit", ["failure", "start"])
def test_update_equals_summed_half_batch_counts(credit):
    cfg = SamplerConfig(credit=credit, ema_alpha=0.05)
    state = sampling.init_sampler(np.array([120, 260, 75]), 50.0, cfg)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    n = 64
    started = jax.random.randint(keys[0], (n,), 0, state.total_bins)
    clip = state.bin_motion[started]
    last = state.bin_offset[clip] + state.num_bins[clip] - 1
    end = jnp.minimum(started + jax.random.randint(keys[1], (n,), 0, 3), last)
    failed = jax.random.bernoulli(keys[2], 0.4, (n,))
    done = jax.random.bernoulli(keys[3], 0.7, (n,))
    nb = state.total_bins
    state = state.replace(ep_count=jnp.linspace(0.1, 1.0, nb), fail_count=jnp.full(nb, 0.05))
    whole = sampling.update_sampler(state, cfg, started, failed, end, done)
    batch = (started, failed, end, done)
    halves = [
        sampling.sampler_counts(state, cfg, *(x[i : i + n // 2] for x in batch)) for i in (0, n // 2)
    ]
    ep, fail = (halves[0][i] + halves[1][i] for i in (0, 1))
    summed = sampling.apply_counts(state, cfg, sampling.SamplerCounts(ep, fail))
    np.testing.assert_allclose(summed.ep_count, whole.ep_count, rtol=1e-6)
    np.testing.assert_allclose(summed.fail_count, whole.fail_count, rtol=1e-6)


def test_motion_probabilities_floor_property():
    cfg = SamplerConfig(motion_uniform_floor=0.5)
    rng = np.random.default_rng(0)
    for trial in range(5):
        frames = rng.integers(20, 400, size=4)
        weight = rng.uniform(0.1, 3.0, size=4)
        state = sampling.init_sampler(frames, 50.0, cfg, clip_weight=weight)
        episodes = rng.uniform(0, 2, state.total_bins) * (rng.uniform(size=state.total_bins) > 0.3)
        state = _with_rates(state, rng.uniform(0, 1, state.total_bins) ** 4, episodes)
        p = np.asarray(sampling.motion_probabilities(state, cfg))
        base = weight / weight.sum()
        assert abs(p.sum() - 1.0) < 1e-5
        assert np.all(p >= 0.5 * base - 1e-6), (trial, p, base)
    uniform = dataclasses.replace(cfg, motion_weighting="uniform")
    np.testing.assert_allclose(sampling.motion_probabilities(state, uniform), base, rtol=1e-6)


def test_sample_starts_ranges_and_bins():
    cfg = SamplerConfig()
    frames, weight = np.array([100, 101, 1, 260]), np.array([1, 1, 1, 2])
    state = sampling.init_sampler(frames, 50.0, cfg, clip_weight=weight)
    state = _with_rates(state, np.random.default_rng(1).uniform(size=state.total_bins))
    draw = jax.jit(sampling.sample_starts, static_argnums=(1, 3))
    motion, frame, bins = map(np.asarray, draw(state, cfg, jax.random.PRNGKey(0), 20000))
    assert motion.dtype == frame.dtype == bins.dtype == np.int32
    assert np.all((frame >= 0) & (frame < np.asarray(state.clip_frames)[motion]))
    frame_bins = sampling.bin_of_frame(state, jnp.asarray(motion), jnp.asarray(frame))
    np.testing.assert_array_equal(frame_bins, bins)
    np.testing.assert_array_equal(np.asarray(state.bin_motion)[bins], motion)
    assert set(frame[bins == 4]) == {100}  # clip 1's last bin holds frame 100 only
    assert set(frame[motion == 2]) == {0}
    assert set(frame[motion == 0]) == set(range(100))
    freq = np.bincount(bins, minlength=state.total_bins) / len(bins)
    motion_p = sampling.motion_probabilities(state, cfg)
    expected = np.asarray(sampling.bin_probabilities(state, cfg) * motion_p[state.bin_motion])
    np.testing.assert_allclose(freq, expected, atol=0.012)


def test_metrics_shapes_and_values():
    cfg = SamplerConfig(kernel_gamma=0.5, kernel_size=2, uniform_mix=0.0)
    state = sampling.init_sampler(np.array([200, 100]), 50.0, cfg)
    state = _with_rates(state, [0, 1, 0, 0, 0, 0])
    m = sampling.sampler_metrics(state, cfg)
    clip0 = -(np.log(1 / 3) / 3 + 2 * np.log(2 / 3) / 3)
    np.testing.assert_allclose(m["bin_entropy"], [clip0, np.log(2)], atol=1e-5)
    np.testing.assert_array_equal(m["top_bin"], [1, 0])
    np.testing.assert_allclose(m["top_bin_probability"], [2 / 3, 0.5], atol=1e-6)
    np.testing.assert_allclose(m["failure_rate"], [0.25, 0.0])
    np.testing.assert_allclose(m["motion_probability"], [0.75, 0.25], atol=1e-6)
    joint = np.array([0.75 / 3, 0.75 * 2 / 3, 0.25 * 0.5, 0.25 * 0.5])
    np.testing.assert_allclose(m["entropy"], -np.sum(joint * np.log(joint)), atol=1e-5)
    assert m["entropy"].shape == ()


def _stub_run(cfg, steps=250, n=512, hard_clip=1, hard_local=4):
    """Stub env: an episode lasts one bin (50 frames) and fails iff it reaches the hard bin."""
    state = sampling.init_sampler(np.array([300, 400, 250]), 50.0, cfg)  # bins [6, 8, 5]
    hard = state.bin_offset[hard_clip] + hard_local

    def step(state, key):
        motion, frame, start = sampling.sample_starts(state, cfg, key, n)
        end_frame = jnp.minimum(frame + 50, state.clip_frames[motion] - 1)
        end = sampling.bin_of_frame(state, motion, end_frame)
        failed = (motion == hard_clip) & (start <= hard) & (end >= hard)
        end = jnp.where(failed, hard, end)
        return sampling.update_sampler(state, cfg, start, failed, end, jnp.ones(n, bool)), None

    keys = jax.random.split(jax.random.PRNGKey(0), steps)
    state, _ = jax.jit(lambda s, k: jax.lax.scan(step, s, k))(state, keys)
    return state


def test_stub_env_concentrates_on_hard_bin():
    cfg = SamplerConfig(ema_alpha=0.02)
    state = _stub_run(cfg)
    p = np.asarray(sampling.bin_probabilities(state, cfg))
    # Exposure credit gives exact rates: bin 4 of clip 1 fails always, every other bin never.
    k = np.array([1.0, 0.8, 0.64]) / 2.44
    clip1 = np.full(8, 0.1 / 8)
    clip1[[4, 3, 2]] += 0.9 * k
    np.testing.assert_allclose(p[6:14], clip1, atol=1e-5)
    np.testing.assert_allclose(p[:6], 1 / 6, atol=1e-6)
    assert p[6 + 4] > 3 * (1 / 8) and p[6 + 3] > 2 * (1 / 8)
    motion_p = np.asarray(sampling.motion_probabilities(state, cfg))
    np.testing.assert_allclose(motion_p, [0.5 / 3, 0.5 + 0.5 / 3, 0.5 / 3], atol=1e-6)
    assert np.all(motion_p >= cfg.motion_uniform_floor / 3 - 1e-6)
    draw = jax.jit(sampling.sample_starts, static_argnums=(1, 3))
    motion, _, bins = map(np.asarray, draw(state, cfg, jax.random.PRNGKey(9), 20000))
    assert abs(np.mean(motion == 1) - 2 / 3) < 0.02
    near_hard = np.isin(bins, [6 + 2, 6 + 3, 6 + 4]).sum() / (motion == 1).sum()
    assert near_hard > 0.9  # uniform would give 3 / 8
    m = sampling.sampler_metrics(state, cfg)
    assert int(m["top_bin"][1]) == 4 and float(m["failure_rate"][1]) > 0.0


def test_stub_env_start_credit():
    cfg = SamplerConfig(ema_alpha=0.02, credit="start")
    state = _stub_run(cfg, steps=150)
    rates = np.asarray(sampling.bin_failure_rates(state, cfg))[6:14]
    # Episodes started in bins 3 and 4 of clip 1 reach bin 4 and fail.
    np.testing.assert_allclose(rates, [0, 0, 0, 1, 1, 0, 0, 0], atol=1e-6)
    p = np.asarray(sampling.bin_probabilities(state, cfg))[6:14]
    # r = [0,0,0,1,1,0,0,0] -> kernel sums [0, .64, 1.44, 1.8, 1, 0, 0, 0] / 4.88.
    expected = 0.1 / 8 + 0.9 * np.array([0, 0.64, 1.44, 1.8, 1, 0, 0, 0]) / 4.88
    np.testing.assert_allclose(p, expected, atol=1e-5)
    assert p[3] > 2 * (1 / 8) and p[2:5].sum() > 0.75
