"""Phase-2 state representations: rotations, character frames, encoding, re-anchoring (no MJX programs)."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from mimic_jax import states as st
from mimic_jax.motion.clip import load_clip
from mimic_jax.motion.library import build_library

CLIP = Path(__file__).resolve().parents[1] / "motions" / "clips" / "turn_left.npz"


def _yaw(angle):
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


@pytest.fixture(scope="module")
def clip_states() -> st.WorldStates:
    lib = build_library([load_clip(CLIP)], ["turn_left"])
    return st.WorldStates(lib.body_pos, lib.body_quat, lib.body_lin_vel, lib.body_ang_vel, lib.joint_pos,
                          lib.joint_vel)


def test_rotvec_hand_values_and_round_trip():
    q = jnp.asarray(_yaw(np.pi / 2))
    np.testing.assert_allclose(st.quat_to_rotvec(q), [0, 0, np.pi / 2], atol=1e-6)
    # -q is the same rotation: same rotation vector.
    np.testing.assert_allclose(st.quat_to_rotvec(-q), [0, 0, np.pi / 2], atol=1e-6)
    np.testing.assert_allclose(st.quat_to_rotvec(jnp.array([1.0, 0, 0, 0])), [0, 0, 0], atol=1e-8)
    r = jnp.array([[0.3, -0.2, 0.1], [1e-9, 0, 0], [0, 2.5, 0]])
    np.testing.assert_allclose(st.quat_to_rotvec(st.rotvec_to_quat(r)), r, atol=1e-6)


def test_encode_hand_example():
    """Root at (1, 2, 0.8) facing +y (yaw 90 deg), moving at 0.5 m/s along +y; every other body 1 m to the
    root's +y (world), i.e. 1 m straight ahead of it."""
    yaw = _yaw(np.pi / 2)
    pos = np.tile([1.0, 2.0, 0.8], (st.NUM_BODIES, 1))
    pos[1:] += [0.0, 1.0, 0.0]
    ws = st.WorldStates(jnp.asarray(pos)[None], jnp.tile(jnp.asarray(yaw), (1, st.NUM_BODIES, 1)),
                        jnp.tile(jnp.array([0.0, 0.5, 0.0]), (1, st.NUM_BODIES, 1)),
                        jnp.zeros((1, st.NUM_BODIES, 3)), jnp.zeros((1, 29)), jnp.zeros((1, 29)))
    frame = st.frame_at(ws, 0)
    s = st.encode("body_pos", ws, frame)[0]
    assert s.shape == (st.BODY_POS.size,) == (87,)
    np.testing.assert_allclose(s[st.BODY_POS.slice("root_pos")], [0, 0, 0.8], atol=1e-6)
    np.testing.assert_allclose(s[st.BODY_POS.slice("root_lin_vel")], [0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(s[st.BODY_POS.slice("root_rotvec")], [0, 0, 0], atol=1e-6)
    local = np.asarray(s[st.BODY_POS.slice("body_pos_b")]).reshape(-1, 3)
    np.testing.assert_allclose(local, np.tile([1.0, 0, 0], (13, 1)), atol=1e-6)
    # The same state in the world-aligned frame at the origin: positions and heading as in the world.
    world = st.Frame(origin=jnp.zeros(3), yaw=jnp.array([1.0, 0, 0, 0]))
    s_w = st.encode("body_pos", ws, world)[0]
    np.testing.assert_allclose(s_w[st.BODY_POS.slice("root_pos")], [1, 2, 0.8], atol=1e-6)
    np.testing.assert_allclose(s_w[st.BODY_POS.slice("root_rotvec")], [0, 0, np.pi / 2], atol=1e-6)
    assert st.JOINT_POS.size == 67 and st.BODY_POS.global_mask.sum() == 9


def test_body_positions_recover_the_world(clip_states):
    frame = st.frame_at(clip_states, 10)
    s = st.encode("body_pos", clip_states, frame)
    expected = st.to_frame(st.Frame(frame.origin[None, None], frame.yaw[None, None]), clip_states.body_pos_w)
    np.testing.assert_allclose(st.body_positions(s), expected, atol=2e-5)
    np.testing.assert_allclose(st.from_frame(frame, st.root_pos("body_pos", s)), clip_states.body_pos_w[:, 0],
                               atol=2e-5)


@pytest.mark.parametrize("rep", ["body_pos", "joint_pos"])
def test_reanchor_equals_encoding_in_that_frame(clip_states, rep):
    """A turning clip encoded in the frame of its first step, re-anchored at step 120, equals encoding it
    directly in the frame of step 120; the heading there is 0 by construction."""
    first = st.encode(rep, clip_states, st.frame_at(clip_states, 0))
    direct = st.encode(rep, clip_states, st.frame_at(clip_states, 120))
    np.testing.assert_allclose(st.reanchor(rep, first, 120), direct, atol=3e-5)
    assert abs(float(st.root_yaw(rep, direct)[120])) < 1e-5
    assert abs(float(st.root_yaw(rep, first)[120])) > 0.3  # the clip really turns


def test_encode_step_matches_trajectory(clip_states):
    frame = st.frame_at(clip_states, 5)
    one = st.WorldStates(*(x[7] for x in clip_states))
    np.testing.assert_allclose(st.encode_step("body_pos", one, frame),
                               st.encode("body_pos", clip_states, frame)[7], atol=1e-6)


def test_unknown_layout_is_one_line():
    with pytest.raises(ValueError, match="unknown state representation 'nope'"):
        st.layout("nope")
