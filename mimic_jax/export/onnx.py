"""ONNX export of the actor, observation normalizer included, built by hand with ``onnx.helper``.

Graph (float32 everywhere): ``obs`` [batch, A] -> Sub(mean) -> Div(std) -> (Gemm -> Elu) per hidden layer ->
Gemm -> ``actions`` [batch, 29], the policy's mean action in ``JOINT_NAMES`` order (MuJoCo = Unitree
order); joint targets are ``default_joint_pos + action_scale * actions``. The normalizer is kept as
explicit Sub/Div (not folded into the first Gemm) so the graph rounds exactly as the JAX policy does.

Deployment form (``reference=``, as BeyondMimic exports it): a second input ``time_step`` [batch, 1]
(float32, a frame index at 50 fps, clipped into the clip) and the clip's reference at that frame as extra
outputs, gathered from constant tables: ``joint_pos``, ``joint_vel`` [batch, 29], ``body_pos_w``,
``body_quat_w`` (w, x, y, z), ``body_lin_vel_w``, ``body_ang_vel_w`` [batch, 14, 3|4] for the tracked
bodies (``body_names`` in the metadata; anchor ``anchor_body_name``).

Metadata (``metadata_props``, strings; lists comma-separated): see :func:`metadata` and docs/evaluation.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import mimic_jax
from mimic_jax.assets import g1
from mimic_jax.envs.observations import term_sizes
from mimic_jax.evaluation.rollout import Policy
from mimic_jax.motion.library import MotionLibrary

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.10
REFERENCE_FIELDS = {"joint_pos": "joint_pos", "joint_vel": "joint_vel", "body_pos_w": "body_pos",
                    "body_quat_w": "body_quat", "body_lin_vel_w": "body_lin_vel", "body_ang_vel_w": "body_ang_vel"}


class ExportError(ValueError):
    """A policy that cannot be exported as asked; one line."""


def actor_layers(policy: Policy) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel [in, out], bias [out]) of every Dense layer of the actor's mean, input to output (float32)."""
    params = policy.params.policy["params"]
    mlp = params.get("MLP_0", {})
    hidden = [mlp[f"hidden_{i}"] for i in range(len(mlp))]
    layers = hidden + [params["Dense_0"]]
    return [(np.asarray(p["kernel"], np.float32), np.asarray(p["bias"], np.float32)) for p in layers]


def _csv(values) -> str:
    return ",".join(f"{v:.9g}" if isinstance(v, (float, np.floating)) else str(v) for v in values)


def metadata(policy: Policy, motion: str | None = None, one_hot: np.ndarray | None = None) -> dict[str, str]:
    """Everything a deployment needs besides the graph, as strings (see docs/evaluation.md)."""
    table = g1.joint_table()
    cfg = policy.env_cfg
    terms = term_sizes(cfg, policy.num_motions)["actor"]
    meta = {
        "format": "mimic_jax actor: actions = mean action; joint target = default_joint_pos + action_scale * actions",
        "mimic_jax_version": mimic_jax.__version__,
        "joint_names": _csv(g1.JOINT_NAMES),
        "joint_names_unitree": _csv(g1.UNITREE_JOINT_NAMES),
        "joint_names_isaac": _csv(g1.ISAAC_JOINT_NAMES),
        "joint_stiffness": _csv(table.kp.astype(float)),
        "joint_damping": _csv(table.kd.astype(float)),
        "default_joint_pos": _csv(table.default_pos.astype(float)),
        "action_scale": _csv(table.action_scale.astype(float)),
        "observation_names": _csv(name for name, _ in terms),
        "observation_sizes": _csv(size for _, size in terms),
        "observation_normalization": "inside the graph: obs are raw, (obs - mean) / std is applied first",
        "anchor_body_name": g1.ANCHOR_BODY,
        "body_names": _csv(g1.TRACKED_BODY_NAMES),
        "motion_names": _csv(policy.motion_names),
        "control_dt": f"{cfg.control_dt:g}",
        "physics_dt": f"{cfg.physics_dt:g}",
        "decimation": str(cfg.decimation),
        "state_estimation": str(bool(cfg.state_estimation)).lower(),
    }
    if motion is not None:
        meta["motion"] = motion
    if one_hot is not None:
        meta["motion_one_hot"] = _csv(np.asarray(one_hot, np.float64))
    return meta


def _actor_nodes(policy: Policy, helper, numpy_helper):
    """Nodes and initializers from ``obs`` to ``actions``."""
    from mimic_jax.ppo.networks import ACTOR_KEY

    mean = np.asarray(policy.normalizer.mean[ACTOR_KEY], np.float32)
    std = np.asarray(policy.normalizer.std[ACTOR_KEY], np.float32)
    inits = [numpy_helper.from_array(mean, "obs_mean"), numpy_helper.from_array(std, "obs_std")]
    nodes = [helper.make_node("Sub", ["obs", "obs_mean"], ["obs_centered"]),
             helper.make_node("Div", ["obs_centered", "obs_std"], ["x0"])]
    layers = actor_layers(policy)
    for i, (kernel, bias) in enumerate(layers):
        last = i == len(layers) - 1
        inits += [numpy_helper.from_array(kernel, f"W{i}"), numpy_helper.from_array(bias, f"b{i}")]
        out = "actions" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [f"x{i}", f"W{i}", f"b{i}"], [out], name=f"dense_{i}"))
        if not last:
            nodes.append(helper.make_node("Elu", [out], [f"x{i + 1}"], alpha=1.0, name=f"elu_{i}"))
    return nodes, inits


def _reference_nodes(reference: dict[str, np.ndarray], helper, numpy_helper):
    """Nodes, initializers and outputs gathering the reference tables at ``time_step``."""
    from onnx import TensorProto

    frames = len(reference["joint_pos"])
    inits = [numpy_helper.from_array(np.array(0, np.int64), "t_min"),
             numpy_helper.from_array(np.array(frames - 1, np.int64), "t_max"),
             numpy_helper.from_array(np.array([1], np.int64), "squeeze_axes")]
    nodes = [helper.make_node("Cast", ["time_step"], ["t_int"], to=TensorProto.INT64),
             helper.make_node("Clip", ["t_int", "t_min", "t_max"], ["t_clipped"]),
             helper.make_node("Squeeze", ["t_clipped", "squeeze_axes"], ["t_index"])]
    outputs = []
    for name, table in reference.items():
        table = np.asarray(table, np.float32)
        inits.append(numpy_helper.from_array(table, f"{name}_table"))
        nodes.append(helper.make_node("Gather", [f"{name}_table", "t_index"], [name], axis=0))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *table.shape[1:]]))
    return nodes, inits, outputs


def clip_reference(lib: MotionLibrary, name: str) -> dict[str, np.ndarray]:
    """The reference tables of clip ``name`` (every frame) under the deployment output names."""
    if name not in lib.names:
        raise ExportError(f"no clip '{name}' to export (clips: {', '.join(lib.names)})")
    i = lib.names.index(name)
    start, length = int(lib.clip_start[i]), int(lib.clip_length[i])
    return {out: np.asarray(getattr(lib, field)[start:start + length], np.float32)
            for out, field in REFERENCE_FIELDS.items()}


def build_model(policy: Policy, *, reference: dict[str, np.ndarray] | None = None,
                meta: dict[str, str] | None = None):
    """The ONNX ``ModelProto`` of the actor (and of the reference tables, if given)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    if policy.nets.dtype != np.float32:
        raise ExportError(f"the actor computes in {policy.nets.dtype}; export needs network_dtype float32")
    nodes, inits = _actor_nodes(policy, helper, numpy_helper)
    inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", policy.nets.actor_obs_size])]
    outputs = [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", policy.nets.action_size])]
    if reference is not None:
        ref_nodes, ref_inits, ref_outputs = _reference_nodes(reference, helper, numpy_helper)
        nodes, inits, outputs = nodes + ref_nodes, inits + ref_inits, outputs + ref_outputs
        inputs.append(helper.make_tensor_value_info("time_step", TensorProto.FLOAT, ["batch", 1]))
    graph = helper.make_graph(nodes, "mimic_jax_actor", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mimic_jax",
                              producer_version=mimic_jax.__version__)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta if meta is not None else metadata(policy))
    checker.check_model(model)
    return model


def export_onnx(path: str | os.PathLike, policy: Policy, *, lib: MotionLibrary | None = None,
                motion: str | None = None, one_hot: np.ndarray | None = None) -> Path:
    """Writes the actor as ONNX; with ``motion`` (a clip of ``lib``) the deployment form. Returns the path."""
    import onnx

    if motion is not None and lib is None:
        raise ExportError(f"exporting clip '{motion}' needs its motion library")
    reference = clip_reference(lib, motion) if motion is not None else None
    model = build_model(policy, reference=reference, meta=metadata(policy, motion, one_hot))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
