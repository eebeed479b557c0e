"""ONNX export of the actor, observation normalizer included, built by hand with ``onnx.helper``.

Graph (float32 everywhere): ``obs`` [batch, A] -> Sub(mean) -> Div(std) -> (Gemm -> Elu) per hidden layer ->
Gemm -> ``actions`` [batch, 29], the policy's mean action in ``JOINT_NAMES`` order (MuJoCo = Unitree
order); joint targets are ``default_joint_pos + action_scale * actions``. The normalizer is kept as
explicit Sub/Div (not folded into the first Gemm) so the graph rounds exactly as the JAX policy does.

Deployment form (``reference=``, as BeyondMimic exports it): a second input ``time_step`` [batch, 1]
(float32, a frame index at 50 fps, clipped into the clip) and the clip's reference at that frame as extra
outputs, gathered from constant tables: ``joint_pos``, ``joint_vel`` [batch, 29], ``body_pos_w``,
``body_quat_w`` (w, x, y, z), ``body_lin_vel_w``, ``body_ang_vel_w`` [batch, 14, 3|4] for the tracked
bodies (``bodies.tracked`` of the deploy config; anchor ``bodies.anchor``).

Metadata (``metadata_props``): ``deploy_config.onnx_metadata`` (the deploy config as JSON and flat keys).
:func:`export_onnx` writes the graph alone; ``export.writer.export_deployment`` writes it with its
``deploy.yaml`` and robot model (docs/deploy.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import mimic_jax
from mimic_jax.export.actor import ExportError, TrainedActor, trained_actor
from mimic_jax.export.deploy_config import REFERENCE_OUTPUTS, ExportedClip, deploy_config, onnx_metadata
from mimic_jax.motion.library import MotionLibrary

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.10
REFERENCE_FIELDS = dict(zip(REFERENCE_OUTPUTS, ("joint_pos", "joint_vel", "body_pos", "body_quat", "body_lin_vel",
                                                "body_ang_vel")))

__all__ = ["ExportError", "build_model", "clip_reference", "export_onnx", "exported_clip", "prepare", "read_metadata"]


def _actor_nodes(actor: TrainedActor, helper, numpy_helper):
    """Nodes and initializers from ``obs`` to ``actions``."""
    inits = [numpy_helper.from_array(actor.obs_mean, "obs_mean"), numpy_helper.from_array(actor.obs_std, "obs_std")]
    nodes = [helper.make_node("Sub", ["obs", "obs_mean"], ["obs_centered"]),
             helper.make_node("Div", ["obs_centered", "obs_std"], ["x0"])]
    for i, (kernel, bias) in enumerate(actor.layers):
        last = i == len(actor.layers) - 1
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


def exported_clip(reference: dict[str, np.ndarray], name: str, one_hot: np.ndarray | None = None) -> ExportedClip:
    """The exported clip's description (``one_hot`` None: the choice of ``deploy_config``)."""
    return ExportedClip(name=name, frames=len(reference["joint_pos"]),
                        one_hot=None if one_hot is None else np.asarray(one_hot, np.float32))


def build_model(actor: TrainedActor, *, reference: dict[str, np.ndarray] | None = None,
                meta: dict[str, str] | None = None):
    """The ONNX ``ModelProto`` of the actor (and of the reference tables, if given)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes, inits = _actor_nodes(actor, helper, numpy_helper)
    inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", actor.obs_size])]
    outputs = [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", actor.action_size])]
    if reference is not None:
        ref_nodes, ref_inits, ref_outputs = _reference_nodes(reference, helper, numpy_helper)
        nodes, inits, outputs = nodes + ref_nodes, inits + ref_inits, outputs + ref_outputs
        inputs.append(helper.make_tensor_value_info("time_step", TensorProto.FLOAT, ["batch", 1]))
    graph = helper.make_graph(nodes, "mimic_jax_actor", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mimic_jax",
                              producer_version=mimic_jax.__version__)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, meta or {})
    checker.check_model(model)
    return model


def prepare(policy, *, lib: MotionLibrary | None = None, motion: str | None = None,
            one_hot: np.ndarray | None = None, onnx_file: str = "policy.onnx"):
    """(ONNX model, deploy config) of a policy; with ``motion`` (a clip of ``lib``) the deployment form."""
    if motion is not None and lib is None:
        raise ExportError(f"exporting clip '{motion}' needs its motion library")
    actor = trained_actor(policy)
    reference = clip_reference(lib, motion) if motion is not None else None
    clip = exported_clip(reference, motion, one_hot) if reference is not None else None
    config = deploy_config(actor, clip, onnx_file)
    return build_model(actor, reference=reference, meta=onnx_metadata(config)), config


def export_onnx(path: str | os.PathLike, policy, *, lib: MotionLibrary | None = None, motion: str | None = None,
                one_hot: np.ndarray | None = None) -> Path:
    """Writes the ONNX graph alone (atomically); with ``motion`` (a clip of ``lib``) the deployment form."""
    from mimic_jax.export.writer import check_destination, write_files

    path = check_destination(path)
    model, _ = prepare(policy, lib=lib, motion=motion, one_hot=one_hot, onnx_file=path.name)
    write_files(path.parent, {path.name: model.SerializeToString()}, what=path)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
