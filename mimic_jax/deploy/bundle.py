"""An exported policy folder, opened and checked: ``deploy.yaml``, the ONNX, the robot model.

:func:`open_bundle` refuses, with one line naming the file: an ONNX whose stored deploy config differs from
``deploy.yaml`` (the first differing key is named), an observation or action size that does not match the
graph's, an observation term this runner cannot compute, model files whose checksum differs, and a model
whose actuated joints are not ``joints.names`` in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import mujoco

from mimic_jax.deploy import config as cfg_lib
from mimic_jax.deploy.config import DeployError
from mimic_jax.deploy.model import Layout, check_joint_order, layout, load_model
from mimic_jax.deploy.observations import TERMS


class Bundle(NamedTuple):
    config: dict
    session: object  # onnxruntime.InferenceSession
    model: mujoco.MjModel
    layout: Layout
    onnx_path: Path
    deploy_path: Path


def _session(path: Path):
    import onnxruntime as ort

    if not path.is_file():
        raise DeployError(f"{path}: no such file")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for unreadable graphs
        raise DeployError(f"{path}: not a readable ONNX model ({exc.__class__.__name__})") from None


def _check_sizes(session, config: dict, onnx_path: Path, deploy_path: Path) -> None:
    obs = config["observation"]
    total = sum(int(t["size"]) for t in obs["terms"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    shape = inputs.get(config["policy"]["input"])
    if shape is None:
        raise DeployError(f"{onnx_path}: no input '{config['policy']['input']}' (inputs: {', '.join(inputs)})")
    if shape[-1] != obs["size"] or total != obs["size"]:
        raise DeployError(f"{deploy_path}: observation size {obs['size']} (terms sum to {total}) does not match "
                          f"{onnx_path}'s input of {shape[-1]}")
    outputs = {o.name: o.shape for o in session.get_outputs()}
    action = outputs.get(config["policy"]["output"])
    if action is None or action[-1] != len(config["joints"]["names"]):
        raise DeployError(f"{onnx_path}: action output {action} does not match the {len(config['joints']['names'])} "
                          f"joints of {deploy_path}")
    for term in obs["terms"]:
        if term["name"] not in TERMS:
            raise DeployError(f"{deploy_path}: observation term '{term['name']}' is unknown to this runner")


def open_bundle(onnx_path: str | Path, deploy_path: str | Path | None = None) -> Bundle:
    """Opens and checks an exported folder (``deploy_path`` defaults to ``deploy.yaml`` beside the ONNX)."""
    onnx_path = Path(onnx_path)
    deploy_path = Path(deploy_path) if deploy_path is not None else onnx_path.parent / cfg_lib.DEPLOY_FILE
    config = cfg_lib.load_config(deploy_path)
    session = _session(onnx_path)
    stored = cfg_lib.from_metadata(session.get_modelmeta().custom_metadata_map, str(onnx_path))
    diff = cfg_lib.first_difference(stored, config)
    if diff:
        raise DeployError(f"{onnx_path} and {deploy_path} disagree: {diff}")
    _check_sizes(session, config, onnx_path, deploy_path)
    model = load_model(deploy_path.parent, config, str(deploy_path))
    check_joint_order(model, config["joints"]["names"], str(deploy_path.parent / config["model"]["scene"]))
    return Bundle(config=config, session=session, model=model, layout=layout(model, config),
                  onnx_path=onnx_path, deploy_path=deploy_path)
