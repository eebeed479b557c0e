"""Phase-2 diffusion model: schedule maths, normalization, the token mask, datasets, training, resume, the
sampler and the closed-loop policy (no MJX program; one tiny model trained once and shared)."""

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from mimic_jax import states as st
from mimic_jax.assets import g1
from mimic_jax.diffusion import checkpoint as ckpt
from mimic_jax.diffusion import schedule as sch
from mimic_jax.diffusion.config import DEMO, Config, ModelConfig
from mimic_jax.diffusion.data import DatasetError, draw_batch, load_dataset, split_episodes, to_device
from mimic_jax.diffusion.learner import ema_decay, fit_to_data, init_state, train_fn
from mimic_jax.diffusion.model import DiffusionModel, Denoiser, attention_mask, init_params
from mimic_jax.diffusion.normalize import (decode_states, encode_states, fit_normalizer, projection_matrix)
from mimic_jax.diffusion.policy import DiffusionPolicy, mujoco_obs, world_states
from mimic_jax.diffusion.sample import CostInput, History, Keyframes, _guide, make_guidance, program, sample
from mimic_jax.diffusion.objective import Tokens
from mimic_jax.diffusion.synthetic import write_synthetic
from mimic_jax.diffusion.train import main

ROOT = Path(__file__).resolve().parents[1]
# The tiny model every training test shares (one compiled training program).
TINY_SETTINGS = ["model.layers=2", "model.width=32", "model.heads=2", "model.horizon=8", "model.action_loss_steps=4",
                 "model.attention_dropout=0.0", "train.batch_size=32", "train.steps_per_call=25",
                 "train.warmup_steps=20", "train.learning_rate=0.002", "train.stats_samples=2048",
                 "train.validation_fraction=0.1"]
TINY = Config(model=ModelConfig(layers=2, width=32, heads=2, horizon=8, action_loss_steps=4, attention_dropout=0.0),
              train=dataclasses.replace(DEMO.config.train, batch_size=32, steps_per_call=25, warmup_steps=20,
                                        learning_rate=0.002, stats_samples=2048, validation_fraction=0.1,
                                        steps=1500))
OVERFIT_STEPS = 300


# -- schedule -------------------------------------------------------------------------------------------------
def test_cosine_schedule_matches_its_formula():
    s = sch.make_schedule(Config().diffusion)
    k = np.arange(21)
    f = np.cos((k / 20 + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(s.alpha_bar[:20], f[:20] / f[0], rtol=1e-5)
    assert float(s.alpha_bar[0]) == 1.0 and float(s.betas[0]) == 0.0 and s.levels == 20
    # Only the last beta reaches the cap: alpha_bar_20 = alpha_bar_19 (1 - 0.999).
    assert np.all(np.asarray(s.betas[1:20]) < 0.999) and float(s.betas[20]) == pytest.approx(0.999)
    np.testing.assert_allclose(s.alpha_bar[20], s.alpha_bar[19] * 0.001, rtol=1e-4)
    assert np.all(np.diff(np.asarray(s.alpha_bar)) < 0)


def test_posterior_and_epsilon_against_hand_values():
    """betas (0.1, 0.5): alpha_bar = (1, 0.9, 0.45). At k = 2, x_0 = 1, x_2 = 2:
    mean = 0.5 sqrt(0.9)/0.55 * 1 + 0.1 sqrt(0.5)/0.55 * 2 = 0.862439 + 0.257130, var = 0.5 * 0.1 / 0.55."""
    s = sch.from_betas([0.1, 0.5])
    np.testing.assert_allclose(s.alpha_bar, [1.0, 0.9, 0.45], rtol=1e-6)
    x0, x2 = jnp.array([1.0]), jnp.array([2.0])
    mean, var = sch.posterior(s, x0, x2, 2)
    np.testing.assert_allclose(mean, [0.862439 + 0.257130], atol=1e-5)
    np.testing.assert_allclose(var, [0.0909091], atol=1e-6)
    # eps implied by x_0 = (2 - sqrt(0.45)) / sqrt(0.55); and back.
    eps = sch.eps_from_x0(s, x2, x0, 2)
    np.testing.assert_allclose(eps, [(2 - np.sqrt(0.45)) / np.sqrt(0.55)], atol=1e-6)
    np.testing.assert_allclose(sch.x0_from_eps(s, x2, eps, 2), x0, atol=1e-6)
    # The DDPM step through epsilon is the posterior: its mean with z = 0, plus sigma z.
    np.testing.assert_allclose(sch.ddpm_step(s, x2, x0, 2, jnp.zeros(1)), mean, atol=1e-6)
    np.testing.assert_allclose(sch.ddpm_step(s, x2, x0, 2, jnp.ones(1)), mean + np.sqrt(var), atol=1e-6)
    # At k = 1 the variance is 0 and the step returns x_0.
    np.testing.assert_allclose(sch.ddpm_step(s, jnp.array([0.3]), x0, 1, jnp.ones(1)), x0, atol=1e-6)


def test_q_sample_takes_one_level_per_token():
    s = sch.from_betas([0.1, 0.5])
    x0, eps = jnp.ones((1, 3, 2)), jnp.full((1, 3, 2), 2.0)
    x = sch.q_sample(s, x0, jnp.array([[0, 1, 2]]), eps)
    np.testing.assert_allclose(x[0, :, 0], [1.0, np.sqrt(0.9) + 2 * np.sqrt(0.1), np.sqrt(0.45) + 2 * np.sqrt(0.55)],
                               rtol=1e-6)


def test_ema_decay_hand_values():
    np.testing.assert_allclose([ema_decay(0, 0.75, 0.9999), ema_decay(15, 0.75, 0.9999), ema_decay(1e9, 0.75, 0.9999)],
                               [0.0, 1 - 16 ** -0.75, 0.9999], rtol=1e-6)


# -- normalization --------------------------------------------------------------------------------------------
def test_emphasis_projection_round_trip_and_pseudo_inverse():
    rng = np.random.default_rng(0)
    rep = st.BODY_POS
    states = rng.normal(size=(200, rep.size)) * rng.uniform(0.1, 3, rep.size) + rng.normal(size=rep.size)
    norm = fit_normalizer(states, rng.normal(size=(200, 29)), rep.global_mask, emphasis=6.0, std_floor=1e-2)
    assert norm.projected_size == 96
    y = encode_states(norm, jnp.asarray(states, jnp.float32))
    np.testing.assert_allclose(decode_states(norm, y), states, atol=2e-4)
    # y = P z with P = [c E; I]: the global dims count (1 + c^2) in a squared norm.
    p = projection_matrix(norm)
    z = (states - np.asarray(norm.state_mean)) / np.asarray(norm.state_std)
    np.testing.assert_allclose(y, z @ p.T, atol=1e-4)
    np.testing.assert_allclose(np.sum(np.square(y), -1), np.sum(z ** 2, -1) + 36 * np.sum(z[:, :9] ** 2, -1), rtol=1e-4)
    # Off the range of P (a noisy prediction) decoding is the least-squares inverse: P^+ y.
    y_off = rng.normal(size=(5, 96)).astype(np.float32)
    expect = (y_off @ np.linalg.pinv(p).T) * np.asarray(norm.state_std) + np.asarray(norm.state_mean)
    np.testing.assert_allclose(decode_states(norm, jnp.asarray(y_off)), expect, atol=1e-4)


# -- the token mask -------------------------------------------------------------------------------------------
def test_attention_mask_hand_example():
    """Two steps: tokens s0, a0, s1, a1."""
    expect = np.array([[1, 0, 1, 0],   # s0: all states
                       [1, 1, 0, 0],   # a0: s0 and itself
                       [1, 0, 1, 0],   # s1: all states
                       [1, 1, 1, 1]],  # a1: everything up to time 1
                      bool)
    np.testing.assert_array_equal(attention_mask(2), expect)


def _random_net(layers: int, steps: int = 4):
    cfg = ModelConfig(layers=layers, width=16, heads=2, attention_dropout=0.0)
    net = Denoiser(cfg, state_size=5, action_size=3, levels=20)
    params = jax.jit(init_params, static_argnums=(0, 2))(net, jax.random.PRNGKey(0), steps)
    # Random values for every weight (the output heads start at zero, which would make every gradient zero).
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    key = jax.random.PRNGKey(2)
    s, a = jax.random.normal(key, (1, steps, 5)), jax.random.normal(jax.random.fold_in(key, 1), (1, steps, 3))
    levels = jnp.array([[0, 3, 7, 20]])
    return net, params, s, a, levels


def _jacobians(net, params, s, a, levels):
    """d(outputs)/d(inputs) summed over feature dims: {(out, in): [S_out, S_in]} (one compiled program)."""
    def f(s, a):
        return net.apply({"params": params}, s, a, levels, levels)

    jac = jax.jit(jax.jacobian(f, argnums=(0, 1)))(s, a)  # jac[out][in]
    names = ("state", "action")
    return {(o, i): np.abs(np.asarray(jac[oi][ii]))[0, :, :, 0].sum(axis=(1, 3))
            for oi, o in enumerate(names) for ii, i in enumerate(names)}


def test_state_outputs_do_not_depend_on_actions_and_actions_not_on_later_actions():
    net, params, s, a, levels = _random_net(layers=2)
    jac = _jacobians(net, params, s, a, levels)
    assert np.all(jac[("state", "action")] == 0.0)  # exactly: no path from an action token to a state output
    assert np.all(jac[("state", "state")] > 0)  # every state sees every state, past and future
    later = np.triu(np.ones((4, 4), bool), k=1)
    assert np.all(jac[("action", "action")][later] == 0.0)
    assert np.all(jac[("action", "action")][~later] > 0)
    # Two layers: an action reads the states up to its time, which have read the future (look-ahead) ...
    assert np.all(jac[("action", "state")] > 0)
    # ... one layer is the mask itself: no later state either. And state outputs ignore the action levels.
    jac1 = _jacobians(*_random_net(layers=1))
    assert np.all(jac1[("action", "state")][later] == 0.0) and np.all(jac1[("action", "state")][~later] > 0)
    net, params, s, a, levels = _random_net(layers=2)
    apply = jax.jit(lambda la: net.apply({"params": params}, s, a, levels, la)[0])
    np.testing.assert_array_equal(apply(levels), apply(jnp.zeros_like(levels)))


def test_level_embedding_is_nn_embed_without_a_scatter_in_its_gradient():
    """One-hot @ table: nn.Embed's parameter, initial values and outputs (so earlier checkpoints load), and a
    gradient without the bf16 scatter-add that made bfloat16 training 6x slower on the H200."""
    import flax.linen as nn

    from mimic_jax.diffusion.model import LevelEmbed

    levels = jax.random.randint(jax.random.PRNGKey(1), (3, 5), 0, 21)
    ours, ref = LevelEmbed(20, 16), nn.Embed(21, 16)
    p_ours, p_ref = ours.init(jax.random.PRNGKey(0), levels), ref.init(jax.random.PRNGKey(0), levels)
    assert jax.tree.map(jnp.shape, p_ours) == jax.tree.map(jnp.shape, p_ref) == {"params": {"embedding": (21, 16)}}
    np.testing.assert_array_equal(p_ours["params"]["embedding"], p_ref["params"]["embedding"])
    np.testing.assert_array_equal(ours.apply(p_ours, levels), ref.apply(p_ref, levels))
    bf16 = LevelEmbed(20, 16, dtype=jnp.bfloat16)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(bf16.apply(p, levels).astype(jnp.float32) ** 2)))
    assert "scatter" not in grad.lower(p_ours).as_text()
    assert "scatter" in jax.jit(jax.grad(lambda p: jnp.sum(ref.apply(p, levels) ** 2))).lower(p_ref).as_text()


# -- data -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """walk_forward and turn_left cut into windows of 40 steps (one episode each)."""
    return write_synthetic(tmp_path_factory.mktemp("data") / "synthetic", ("walk_forward", "turn_left"), window=40,
                           stride=20)


def _edited(dataset: Path, tmp_path: Path, edit) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(dataset, copy)
    edit(copy)
    return copy


def _card_edit(**changes):
    def edit(path):
        card = json.loads((path / "card.json").read_text())
        card.update(changes)
        (path / "card.json").write_text(json.dumps(card))
    return edit


def _truncate_states(path):
    np.save(path / "state_body_pos.npy", np.load(path / "state_body_pos.npy")[..., :80])
    _card_edit(fields={})(path)


def _nan_label(path):
    labels = np.load(path / "label.npy")
    labels[3, 5, 0] = np.nan
    np.save(path / "label.npy", labels)


@pytest.mark.parametrize("edit, message", [
    (lambda p: (p / "label.npy").unlink(), "no label.npy"),
    (lambda p: (p / "card.json").unlink(), "no card.json"),
    (_card_edit(state_layouts={"body_pos": [["root_pos", 3], ["body_pos_b", 84]]}), "state_body_pos has layout"),
    (_truncate_states, r"state_body_pos.npy has shape \(\d+, 40, 80\), expected \[windows, steps, 87\]"),
    (_card_edit(fields={"label": {"shape": [1, 2, 3]}}), r"label.npy: shape .* the card says \(1, 2, 3\)"),
    (_nan_label, "label.npy has NaN or inf \\(first in window 3\\)"),
])
def test_bad_datasets_are_refused_with_one_line(dataset, tmp_path, edit, message):
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(_edited(dataset, tmp_path, edit))
    assert "\n" not in str(info.value)


def test_windows_are_drawn_reanchored_at_the_current_step(dataset):
    ds = load_dataset(dataset)
    assert ds.states.shape == (ds.windows, 40, 87) and ds.labels.shape == (ds.windows, 40, 29)
    train, val = split_episodes(ds.episode, 0.1, seed=0)
    assert len(val) == round(0.1 * ds.windows) > 1 and not set(train) & set(val) and len(train) + len(val) == ds.windows
    data = to_device(ds, train, val)
    draw = jax.jit(draw_batch, static_argnums=(3, 4, 5, 6))
    batch = draw(data, data.train, jax.random.PRNGKey(0), 64, 4, 8, st.BODY_POS)
    assert batch.states.shape == (64, 13, 87) and batch.actions.shape == (64, 13, 29)
    # At the current step (index N = 4) the root is above the frame's origin and faces along +x.
    np.testing.assert_allclose(batch.states[:, 4, :2], 0.0, atol=1e-5)
    np.testing.assert_allclose(st.root_yaw(st.BODY_POS, batch.states)[:, 4], 0.0, atol=1e-5)
    # Each sample is a re-anchored slice of a training window (found by its labels).
    labels, states = np.asarray(ds.labels), np.asarray(ds.states)
    for b in range(3):
        hits = [(w, c) for w in train for c in range(4, 32)
                if np.array_equal(labels[w, c - 4:c + 9], np.asarray(batch.actions[b]))]
        assert hits, "a sample that is no slice of a training window"
        w, c = hits[0]
        expect = st.reanchor(st.BODY_POS, jnp.asarray(states[w, c - 4:c + 9]), 4)
        np.testing.assert_allclose(batch.states[b], expect, atol=1e-5)


# -- training -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(dataset):
    """The tiny model trained OVERFIT_STEPS steps: (model, losses per call)."""
    ds = load_dataset(dataset)
    train, val = split_episodes(ds.episode, TINY.train.validation_fraction, 0)
    data = to_device(ds, train, val)
    norm = fit_to_data(TINY, data, jax.random.PRNGKey(1))
    sched = sch.make_schedule(TINY.diffusion)
    state, fn, losses = init_state(TINY, jax.random.PRNGKey(0)), train_fn(TINY), []
    for _ in range(OVERFIT_STEPS // TINY.train.steps_per_call):
        state, metrics = fn(state, data, norm, sched)
        losses.append(float(metrics.loss))
    return DiffusionModel(params=state.ema, normalizer=norm, schedule=sched, cfg=TINY), losses


def test_tiny_model_overfits_a_tiny_dataset(trained):
    """300 steps on about 40 windows of 40 steps: the training loss (mean over a call) falls at least 5x from
    the first call (measured: 3.17 -> 0.30)."""
    _, losses = trained
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0] / 5, losses


def test_cli_trains_saves_resumes_exactly_and_refuses_other_data(dataset, tmp_path, capsys):
    """A run of 50 steps (two calls of 25), and the same run stopped by --max-minutes after its first call and
    resumed: the same weights, optimizer state and key, bit for bit."""
    flags = ["--data", str(dataset), "--preset", "demo", "--steps", "50", "--checkpoint-every", "25"]
    flags += [x for s in TINY_SETTINGS for x in ("--set", s)]
    run, stopped = tmp_path / "run", tmp_path / "stopped"
    assert main(flags + ["--out", str(run)]) == 0
    assert (run / "metrics.jsonl").is_file() and (run / "loss_curve.png").is_file() and (run / "tensorboard").is_dir()
    full, norm_full, cfg, meta = ckpt.restore(run)
    assert int(full.step) == 50 and meta["layout"]["name"] == "body_pos" and cfg.model.width == 32
    assert main(flags + ["--out", str(stopped), "--max-minutes", "1e-6"]) == 0
    assert int(ckpt.read_meta(stopped)["step"]) == 25
    assert main(["--resume", str(stopped)]) == 0
    resumed, norm_resumed, _, _ = ckpt.restore(stopped)
    for a, b in zip(jax.tree.leaves((full, norm_full)), jax.tree.leaves((resumed, norm_resumed))):
        np.testing.assert_array_equal(a, b)
    assert [r["step"] for r in map(json.loads, (stopped / "metrics.jsonl").read_text().splitlines())] == [25, 50]
    model, _ = ckpt.load_model(stopped)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), model.params, resumed.ema))
    capsys.readouterr()
    # Refusals, one line each, exit 2: another dataset for this run, a dataset of another layout, config changes.
    other = _edited(dataset, tmp_path, _card_edit(clips=["other"]))
    assert main(["--resume", str(run), "--data", str(other)]) == 2
    bad = _edited(dataset, tmp_path / "b", _card_edit(state_layouts={"body_pos": [["root_pos", 3]]}))
    assert main(["--data", str(bad), "--out", str(tmp_path / "run2")]) == 2
    assert main(["--resume", str(run), "--steps", "80"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err), err
    assert "differs" in err[0] and "state_body_pos has layout" in err[1] and "drop --steps" in err[2]


@pytest.mark.parametrize("argv, message", [
    (["--set", "model.widht=3"], "unknown setting 'model.widht' (did you mean model.width"),
    (["--set", "model.width=30"], "model.width 30 is not a multiple of model.heads 4"),
    (["--set", "model.compute_dtype=fp8"], "'fp8' is not one of float32, bfloat16"),
    (["--set", "train.steps=many"], "'many' is not a valid int"),
    (["--set", "model.attention_dropout=1"], "model.attention_dropout must be in [0, 1)"),
    (["--max-minutes", "0"], "--max-minutes must be positive"),
    ([], "--data is required"),
])
def test_bad_settings_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err


def test_checkpoint_of_another_layout_is_refused(tmp_path):
    meta = {"checkpoint": "RUN/checkpoints/5", "config": dataclasses.asdict(Config()),
            "layout": {"name": "body_pos", "size": 93, "parts": [["root_pos", 3]]}}
    with pytest.raises(ckpt.RunError, match="trained on state layout body_pos"):
        ckpt.check_layout(meta)


# -- sampling -------------------------------------------------------------------------------------------------
def _history(model: DiffusionModel, dataset: Path, robots: int = 2) -> History:
    states = np.asarray(load_dataset(dataset).states)[:robots, :5]
    labels = np.asarray(load_dataset(dataset).labels)[:robots, :4]
    frame = st.Frame(origin=jnp.zeros((robots, 3)), yaw=jnp.tile(jnp.array([1.0, 0, 0, 0]), (robots, 1)))
    return History(states=st.reanchor(st.BODY_POS, jnp.asarray(states), 4), actions=jnp.asarray(labels), frame=frame)


def forward_speed_cost(inp: CostInput, goal):
    """1/2 sum_t (v_x,t - goal)^2."""
    return 0.5 * jnp.sum(jnp.square(st.root_lin_vel(st.BODY_POS, inp.states)[:, 0] - goal))


def test_sample_is_deterministic_and_compiles_once(trained, dataset):
    model, _ = trained
    history = _history(model, dataset)
    guidance = make_guidance(forward_speed_cost, jnp.asarray(1.0), 0.05, 20)
    before = program._cache_size()
    a = sample(model, history, jax.random.PRNGKey(0), guidance)
    b = sample(model, history._replace(states=history.states + 0.0), jax.random.PRNGKey(0),
               guidance.replace(params=jnp.asarray(-1.0), weight=jnp.asarray(0.0)))
    c = sample(model, history, jax.random.PRNGKey(0), guidance)
    d = sample(model, history, jax.random.PRNGKey(1), guidance)
    assert program._cache_size() == before + 1  # new goal, weight and key: the same program
    assert a.states.shape == (2, 9, 87) and a.actions.shape == (2, 9, 29)
    np.testing.assert_array_equal(a.states, c.states)
    np.testing.assert_array_equal(a.actions, c.actions)
    assert not np.allclose(a.actions, d.actions) and not np.allclose(a.actions, b.actions)
    np.testing.assert_allclose(a.states[:, 0], history.states[:, -1], atol=1e-4)  # s_t is the given one
    assert np.all(np.isfinite(a.states)) and np.all(np.isfinite(a.actions))
    unrolled = sample(model, history, jax.random.PRNGKey(0), guidance, unroll=20)  # the option measured on the H200
    assert program._cache_size() == before + 2
    np.testing.assert_allclose(unrolled.actions, a.actions, atol=1e-4)
    np.testing.assert_allclose(unrolled.states, a.states, atol=1e-4)


def test_the_diffusion_model_needs_no_mujoco():
    """Training and sampling import without MuJoCo (the GPU speed bench runs where MuJoCo is not installed)."""
    import subprocess
    import sys

    code = ("import sys\nfor m in ('mujoco', 'mujoco.mjx', 'brax'): sys.modules[m] = None\n"
            "import mimic_jax.diffusion.train, mimic_jax.diffusion.sample, mimic_jax.diffusion.learner\n"
            "from mimic_jax.assets import g1\ntry:\n    g1.load_model()\nexcept ImportError:\n    print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_guidance_gradient_goes_through_the_inverse_normalization(trained):
    """G = 1/2 ||s - s*||^2 over the decoded states: the step is x0 - w P^+T diag(sigma) (s - s*) per state token."""
    model, _ = trained
    norm, n = model.normalizer, model.cfg.model.history
    rng = np.random.default_rng(0)
    x0 = Tokens(jnp.asarray(rng.normal(size=(1, 13, 96)), jnp.float32), jnp.zeros((1, 13, 29)))
    target = jnp.asarray(rng.normal(size=87), jnp.float32)
    g = make_guidance(lambda inp, t: 0.5 * jnp.sum(jnp.square(inp.states - t)), target, 0.3, 20)
    frame = st.Frame(jnp.zeros((1, 3)), jnp.array([[1.0, 0, 0, 0]]))
    guided = _guide(model, g, x0, frame, 5)
    s = np.asarray(decode_states(norm, x0.states[:, n:]))
    grad_y = ((s - np.asarray(target)) * np.asarray(norm.state_std)) @ np.linalg.pinv(projection_matrix(norm))
    np.testing.assert_allclose(guided.states[:, n:], x0.states[:, n:] - 0.3 * grad_y, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(guided.states[:, :n], x0.states[:, :n])  # history: no cost, no change
    off = make_guidance(g.cost, target, 0.3, 20, last=4)  # guidance only at levels 1 .. 4
    np.testing.assert_array_equal(_guide(model, off, x0, frame, 5).states, x0.states)


def test_guidance_steers_the_plan_and_keyframes_are_clamped(trained, dataset):
    model, _ = trained
    history = _history(model, dataset)
    key = jax.random.PRNGKey(3)
    speed = lambda plan: float(jnp.mean(st.root_lin_vel(st.BODY_POS, plan.states)[:, 1:, 0]))  # noqa: E731
    free = sample(model, history, key)
    fast = sample(model, history, key, make_guidance(forward_speed_cost, jnp.asarray(3.0), 0.5, 20))
    slow = sample(model, history, key, make_guidance(forward_speed_cost, jnp.asarray(-3.0), 0.5, 20))
    assert speed(slow) < speed(free) < speed(fast)
    target = jnp.asarray(load_dataset(dataset).states[0, 10:18])[None].repeat(2, 0)
    mask = jnp.zeros((2, 8), bool).at[:, 3].set(True)
    plan = sample(model, history, key, keyframes=Keyframes(mask=mask, states=target))
    np.testing.assert_allclose(plan.states[:, 4], target[:, 3], atol=1e-4)  # s_{t+4} is the keyframe


def test_policy_steps_two_mujoco_robots_without_nan(trained):
    """The closed loop in MuJoCo C: replan each control step, execute a_t, the history slides."""
    model, _ = trained
    policy = DiffusionPolicy(model)
    mj = g1.load_model()
    body_ids, table = g1.body_ids(mj, g1.TRACKED_BODY_NAMES), g1.joint_table()
    datas = []
    for x in (0.0, 1.0):
        d = mujoco.MjData(mj)
        d.qpos[:] = g1.qpos_from(np.array([x, 0, g1.DEFAULT_ROOT_HEIGHT]), np.array([1.0, 0, 0, 0]), table.default_pos)
        mujoco.mj_forward(mj, d)
        datas.append(d)
    step = jax.jit(lambda p, c, o, k: p.step(c, o, k))
    carry = jax.device_put(policy.init(2, jax.random.PRNGKey(0)))
    world = st.Frame(jnp.zeros((2, 3)), jnp.tile(jnp.array([1.0, 0, 0, 0]), (2, 1)))
    for t in range(4):
        obs = mujoco_obs(datas, body_ids)
        action, carry = step(policy, carry, obs, jax.random.PRNGKey(t))
        assert action.shape == (2, 29) and np.all(np.isfinite(action))
        newest = st.encode_step(st.BODY_POS, world_states(obs), world)
        np.testing.assert_allclose(carry.states_w[:, -1], newest, atol=1e-5)
        if t == 0:  # the first history: the first state repeated, the dataset's mean action
            np.testing.assert_allclose(carry.states_w, np.repeat(np.asarray(newest)[:, None], 5, 1), atol=1e-6)
            np.testing.assert_allclose(carry.actions[:, 0], np.tile(model.normalizer.action_mean, (2, 1)), atol=1e-6)
        for d, a in zip(datas, np.asarray(action)):
            d.ctrl[:] = table.default_pos + table.action_scale * a
            for _ in range(4):
                mujoco.mj_step(mj, d)
            mujoco.mj_kinematics(mj, d)
    np.testing.assert_allclose(carry.actions[:, -1], action, atol=1e-6)
    assert bool(jnp.all(carry.started)) and all(np.all(np.isfinite(d.qpos)) for d in datas)
    assert step._cache_size() == 1


@pytest.mark.slow
def test_speed_bench_runs_at_tiny_size():
    """experiments/bench_diffusion.py, the script of the GPU speed figures, on a CPU at tiny size."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_diffusion", ROOT / "experiments" / "bench_diffusion.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--tiny", "--batch-size", "8", "--steps-per-call", "2", "--calls", "1", "--robots", "2",
                         "--repeats", "2"])
    assert result["training"]["steps"] == 2 and result["training"]["steps_per_s"] > 0
    assert set(result["sampling"]) == {"guided_2", "unguided_2"} and set(result["replan"]) == {"replan_2"}
    assert all(r["median_ms"] > 0 for r in [*result["sampling"].values(), *result["replan"].values()])
