"""The deploy config: one function states every fact a robot controller needs (:func:`deploy_config`);
:func:`to_yaml` writes it as the commented ``deploy.yaml`` and :func:`onnx_metadata` as the ONNX's metadata
(the whole mapping as JSON under ``deploy_config``, plus the flat keys older readers use), so the two agree.

Robot facts come from the model as training builds it (``model_facts``) and from the joint table and the
config the environment uses; nothing is typed in here. The sections are described in docs/deploy.md.
"""

from __future__ import annotations

import dataclasses
import json
from typing import NamedTuple

import numpy as np
import yaml

import mimic_jax
from mimic_jax.assets import g1
from mimic_jax.deploy.config import FORMAT, METADATA_KEY
from mimic_jax.deploy.observations import TERMS
from mimic_jax.envs.config import EnvConfig
from mimic_jax.envs.observations import _noise_scale, term_sizes  # the environment's own noise table
from mimic_jax.export import model_facts
from mimic_jax.export.actor import ExportError, TrainedActor
from mimic_jax.export.model_facts import floats

REFERENCE_OUTPUTS = ("joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w", "body_ang_vel_w")
COMMENTS = {
    "format": "mimic_jax deployment config: what a robot controller needs besides the ONNX graph.\n"
              "The same mapping is stored as JSON in the ONNX metadata key 'deploy_config'; the runner\n"
              "(python -m mimic_jax.deploy) refuses a pair that differs. Joints are in joints.names order.",
    "policy": "ONNX inputs and outputs; the observation normalizer is inside the graph (feed raw values).",
    "control": "Control loop: one policy call per control_dt, targets held for decimation physics steps.",
    "joints": "Actuated joints in action order, read from the training model: PD gains (N m/rad, N m s/rad),\n"
              "armature (kg m^2), effort (N m) and velocity (rad/s, rated motor limits) limits, ranges (rad).",
    "default_joint_pos": "Default pose: actions are offsets from it. Training drew a per-joint offset once per\n"
                         "environment (training_offset); deploy with the nominal pose.",
    "action": "Joint targets from actions, and the PD law the simulation applies to them.",
    "observation": "Actor observation terms in input order: offset and size in the input vector, frame,\n"
                   "noise-free definition, where each input comes from, and the U(-n, n) noise of training.",
    "sensors": "Sensors the observation needs: the IMU (a site of the pelvis), joint encoders, and the\n"
               "state estimate of the pelvis (null when the policy does not use one).",
    "bodies": "Bodies of the reference and metrics: root (free joint), anchor, tracked (order of the\n"
              "reference arrays), end effectors.",
    "motion": "Motion one-hot: the training clips in one-hot order, where the block sits in the observation,\n"
              "the input for a clip not trained on, and the clip inside the ONNX (null if none).",
    "model": "Robot model beside this file (sha256 per file; the robot file's is the checkpoint's model_hash)\n"
             "and the settings training applied on top of the MJCF.",
    "terminations": "Failure thresholds of training and evaluation (m, m, and gravity-z difference).",
}


class ExportedClip(NamedTuple):
    """The clip whose reference a deployment-form ONNX outputs."""

    name: str
    frames: int
    one_hot: np.ndarray | None  # None: the clip's one-hot if trained on, else motion.unseen_clip_one_hot


def _observation(actor: TrainedActor) -> dict:
    cfg = actor.env_cfg
    noise = _noise_scale(cfg) if cfg.noise.enabled else {}
    terms, offset = [], 0
    for name, size in term_sizes(cfg, len(actor.motion_names))["actor"]:
        if name not in TERMS:
            raise ExportError(f"observation term '{name}' has no deployment definition (mimic_jax.deploy.observations)")
        t = TERMS[name]
        terms.append({"name": name, "size": int(size), "offset": offset, "frame": t.frame, "definition": t.definition,
                      "sources": list(t.sources), "training_noise": float(noise.get(name, 0.0))})
        offset += int(size)
    if offset != actor.obs_size:
        raise ExportError(f"the actor's input has {actor.obs_size} values, its observation terms {offset}")
    return {"size": offset, "dtype": "float32", "terms": terms}


def _motion(actor: TrainedActor, exported: ExportedClip | None, observation: dict) -> dict:
    block = next(t for t in observation["terms"] if t["name"] == "motion_one_hot")
    start, size = block["offset"], block["size"]
    names, unseen = list(actor.motion_names), actor.obs_mean[start:start + size]
    clip = None
    if exported is not None:
        one_hot = exported.one_hot
        if one_hot is None:
            one_hot = np.eye(size)[names.index(exported.name)] if exported.name in names else unseen
        clip = {"name": exported.name, "frames": int(exported.frames), "one_hot": floats(one_hot),
                "outputs": list(REFERENCE_OUTPUTS)}
    return {"fps": float(1.0 / actor.env_cfg.control_dt), "names": names, "one_hot_offset": start,
            "one_hot_size": size, "unseen_clip_one_hot": floats(unseen), "exported": clip}


def _defaults(cfg: EnvConfig) -> dict:
    r = cfg.randomization
    return {"nominal": floats(g1.joint_table().default_pos),
            "training_offset": {"enabled": bool(r.enabled), "distribution": "uniform", "half_range":
                                float(r.joint_default_offset), "drawn": "per joint, once per training environment"}}


def deploy_config(actor: TrainedActor, exported: ExportedClip | None = None, onnx_file: str = "policy.onnx") -> dict:
    """Every fact of the deployment, as plain YAML/JSON values (see the module doc)."""
    cfg, model = actor.env_cfg, model_facts.training_model(actor.env_cfg)
    observation = _observation(actor)
    return {
        "format": FORMAT, "mimic_jax_version": mimic_jax.__version__,
        "policy": {"file": onnx_file, "input": "obs", "output": "actions",
                   "time_step_input": "time_step" if exported is not None else None,
                   "normalization": "inside the graph: feed raw observations", "actions": "the Gaussian's mean"},
        "control": {"control_dt": float(cfg.control_dt), "control_hz": float(1.0 / cfg.control_dt),
                    "physics_dt": float(cfg.physics_dt), "decimation": int(cfg.decimation)},
        "joints": model_facts.joints_section(model, cfg),
        "default_joint_pos": _defaults(cfg),
        "action": {"scale": floats(g1.joint_table().action_scale), "clip": None,
                   "target": "q_target = default_joint_pos.nominal + action.scale * actions",
                   "pd": "tau = clip(stiffness (q_target - q) - damping dq, -effort_limit, effort_limit)"},
        "observation": observation,
        "sensors": model_facts.sensors_section(model, cfg),
        "bodies": {"root": model_facts.ROOT_BODY, "anchor": g1.ANCHOR_BODY, "tracked": list(g1.TRACKED_BODY_NAMES),
                   "end_effectors": list(g1.END_EFFECTOR_NAMES)},
        "motion": _motion(actor, exported, observation),
        "model": model_facts.model_section(model),
        "terminations": {k: float(v) for k, v in dataclasses.asdict(cfg.terminations).items()},
    }


def _csv(values) -> str:
    return ",".join(f"{v:.9g}" if isinstance(v, float) else str(v) for v in values)


def onnx_metadata(config: dict) -> dict[str, str]:
    """The ONNX ``metadata_props``: the config as JSON, and flat comma-separated keys derived from it."""
    j, obs, motion, control = config["joints"], config["observation"], config["motion"], config["control"]
    meta = {
        METADATA_KEY: json.dumps(config, sort_keys=False, separators=(",", ":")),
        "format": "mimic_jax actor: actions = mean action; joint target = default_joint_pos + action_scale * actions",
        "mimic_jax_version": config["mimic_jax_version"],
        "joint_names": _csv(j["names"]), "joint_names_unitree": _csv(j["names"]),
        "joint_names_isaac": _csv(j["names_isaac"]), "joint_stiffness": _csv(j["stiffness"]),
        "joint_damping": _csv(j["damping"]), "joint_armature": _csv(j["armature"]),
        "effort_limit": _csv(j["effort_limit"]), "velocity_limit": _csv(j["velocity_limit"]),
        "default_joint_pos": _csv(config["default_joint_pos"]["nominal"]),
        "action_scale": _csv(config["action"]["scale"]),
        "observation_names": _csv(t["name"] for t in obs["terms"]),
        "observation_sizes": _csv(t["size"] for t in obs["terms"]),
        "observation_normalization": "inside the graph: obs are raw, (obs - mean) / std is applied first",
        "anchor_body_name": config["bodies"]["anchor"], "body_names": _csv(config["bodies"]["tracked"]),
        "motion_names": _csv(motion["names"]), "control_dt": f"{control['control_dt']:g}",
        "physics_dt": f"{control['physics_dt']:g}", "decimation": str(control["decimation"]),
        "state_estimation": str(config["sensors"]["state_estimator"] is not None).lower(),
        "model_sha256": config["model"]["files"][config["model"]["robot"]],
    }
    if motion["exported"] is not None:
        meta["motion"] = motion["exported"]["name"]
        meta["motion_one_hot"] = _csv(motion["exported"]["one_hot"])
    return meta


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values, which go on one (wrapped) line."""


def _represent_list(dumper: yaml.SafeDumper, values: list):
    flat = all(not isinstance(v, (dict, list)) for v in values)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", values, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def to_yaml(config: dict) -> str:
    """``deploy.yaml``'s text: each section under its comment."""
    parts = []
    for key, value in config.items():
        comment = COMMENTS.get(key)
        if comment:
            parts.append("\n" + "\n".join(f"# {line}" for line in comment.splitlines()))
        parts.append(yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                               width=110).rstrip())
    return "\n".join(parts).lstrip() + "\n"
