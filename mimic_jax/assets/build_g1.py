"""Writes our own Unitree G1 (29 DoF) MJCF from the figures in ``g1_facts.json``.

The facts file holds only numbers (kinematics, inertials, joint ranges, collision primitives, motor
classes). Everything else here (visual primitives, actuators, contact classes, keyframes, the scene) is
ours. Run ``python -m mimic_jax.assets.build_g1`` to regenerate ``g1.xml`` and ``scene.xml``; a test checks
that the committed files equal what this script writes.

PD control is realised with MuJoCo ``position`` actuators (gain kp, ``kv`` = kd, ``forcerange`` = effort
limit): tau = clip(kp (q* - q) - kd qdot, -effort, effort). With the ``implicitfast`` integrator the kd
term is integrated implicitly, which keeps the stiff, high-armature joints stable at dt = 0.005 s.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent
FACTS_PATH = ASSET_DIR / "g1_facts.json"
ROBOT_XML = ASSET_DIR / "g1.xml"
SCENE_XML = ASSET_DIR / "scene.xml"

# The default ("knees bent") pose of the tracking problem and its pelvis height.
KNEES_BENT_Z = 0.76
KNEES_BENT = {
    ".*_hip_pitch_joint": -0.312,
    ".*_knee_joint": 0.669,
    ".*_ankle_pitch_joint": -0.363,
    ".*_elbow_joint": 0.6,
    ".*_shoulder_pitch_joint": 0.2,
    "left_shoulder_roll_joint": 0.2,
    "right_shoulder_roll_joint": -0.2,
}
FOOT_GEOM = re.compile(r"^(left|right)_foot[1-7]_collision$")

# Collisions. Every robot collision geom belongs to the group of its body; each group owns one contype bit
# and a geom's conaffinity holds the bits of the groups it collides with, plus the floor's. MuJoCo collides
# two geoms when the contype of either shares a bit with the conaffinity of the other, so the collisions are
# exactly the symmetric relation SELF_COLLISION_PAIRS (plus everything with the floor). Not listed, hence
# never colliding: geoms of one limb with each other (neighbouring links, whose primitives overlap by 1-8 cm
# in the default pose) and the pelvis with the legs (the pelvis sphere overlaps the hip capsules, by 3 mm in
# the default pose).
FLOOR_BIT = 1
COLLISION_GROUPS = ("pelvis", "torso", "left_leg", "right_leg", "left_arm", "right_arm")
GROUP_BIT = {name: 2 << i for i, name in enumerate(COLLISION_GROUPS)}
SELF_COLLISION_PAIRS = (
    ("left_leg", "right_leg"), ("left_leg", "torso"), ("right_leg", "torso"),
    ("left_arm", "pelvis"), ("left_arm", "torso"), ("left_arm", "left_leg"), ("left_arm", "right_leg"),
    ("right_arm", "pelvis"), ("right_arm", "torso"), ("right_arm", "left_leg"), ("right_arm", "right_leg"),
    ("left_arm", "right_arm"),
)
# MJX's JAX backend (the CPU one) checks every listed geom pair each step and gives each a constraint row
# whether it touches or not; this custom option makes it check only the 8 closest pairs (by bounding
# sphere) of each collision-function group. MuJoCo C and MJX-Warp ignore it.
MJX_MAX_GEOM_PAIRS = 8


def load_facts(path: Path = FACTS_PATH) -> dict:
    with open(path) as f:
        return json.load(f)


def _fmt(values) -> str:
    return " ".join(f"{float(v):.10g}" for v in values)


def motor_table(facts: dict) -> dict[str, dict]:
    """Per joint: armature, kp, kd, effort limit and action scale from the motor classes.

    The 4-bar linkage joints (waist pitch/roll, ankles) use two 5020 motors: armature, kp, kd and effort
    are doubled; the action scale 0.25 * effort / kp and the velocity limit are unchanged.
    """
    classes = facts["actuator_classes"]
    motors = classes["motors"]
    table = {}
    for joint in facts["joints"][1:]:
        name = joint["name"]
        for group, patterns in classes["joint_groups"].items():
            if any(re.fullmatch(p, name) for p in patterns):
                doubled = group.startswith("2x")
                m = motors["5020" if doubled else group]
                k = 2.0 if doubled else 1.0
                table[name] = {
                    "class": "2x5020" if doubled else group,
                    "armature": k * m["armature"],
                    "kp": k * m["kp"],
                    "kd": k * m["kd"],
                    "effort": k * m["effort_limit_nm"],
                    "velocity_limit": m["velocity_limit_rad_s"],  # the linkage's two motors: same speed
                    "action_scale": 0.25 * m["effort_limit_nm"] / m["kp"],
                }
                break
        else:
            raise ValueError(f"{FACTS_PATH}: joint {name} matches no motor class")
    return table


def _visual_geoms(body_el: ET.Element, body: dict, children: list[dict]) -> None:
    """Primitive visuals: a capsule from the body origin to each child, feet plates and hands."""
    rgba = "0.2 0.2 0.22 1" if "link" in body["name"] else "0.7 0.7 0.7 1"
    for child in children:
        p = child["pos"]
        if math.dist(p, (0, 0, 0)) > 0.02:
            ET.SubElement(body_el, "geom", {"class": "visual", "type": "capsule", "size": "0.028",
                                            "fromto": _fmt([0, 0, 0, *p]), "rgba": rgba})
    name = body["name"]
    if name == "pelvis":
        ET.SubElement(body_el, "geom", {"class": "visual", "type": "box", "size": "0.05 0.09 0.05",
                                        "pos": "0 0 -0.06", "rgba": "0.75 0.75 0.78 1"})
    elif name == "torso_link":
        ET.SubElement(body_el, "geom", {"class": "visual", "type": "box", "size": "0.07 0.11 0.12",
                                        "pos": "0 0 0.16", "rgba": "0.75 0.75 0.78 1"})
        ET.SubElement(body_el, "geom", {"class": "visual", "type": "sphere", "size": "0.075",
                                        "pos": "0 0 0.42", "rgba": "0.15 0.15 0.17 1"})
    elif name.endswith("ankle_roll_link"):
        ET.SubElement(body_el, "geom", {"class": "visual", "type": "box", "size": "0.105 0.035 0.012",
                                        "pos": "0.035 0 -0.025", "rgba": "0.15 0.15 0.17 1"})
    elif name.endswith("wrist_yaw_link"):
        ET.SubElement(body_el, "geom", {"class": "visual", "type": "box", "size": "0.05 0.02 0.035",
                                        "pos": "0.09 0 0", "rgba": "0.75 0.75 0.78 1"})


def collision_group(body: str) -> str:
    """The collision group (``COLLISION_GROUPS``) of a robot body."""
    if body in ("pelvis", "torso_link"):
        return body.removesuffix("_link")
    match = re.match(r"^(left|right)_(hip|knee|ankle|shoulder|elbow|wrist)_", body)
    if match is None:
        raise ValueError(f"{FACTS_PATH}: body {body} has collision geoms but no collision group")
    limb = "leg" if match.group(2) in ("hip", "knee", "ankle") else "arm"
    return f"{match.group(1)}_{limb}"


def group_affinity(group: str) -> int:
    """Conaffinity of a group's geoms: the floor and every group it is paired with."""
    partners = [b if a == group else a for a, b in SELF_COLLISION_PAIRS if group in (a, b)]
    return FLOOR_BIT | sum(GROUP_BIT[p] for p in partners)


def _collision_geom(parent: ET.Element, geom: dict) -> None:
    foot = bool(FOOT_GEOM.match(geom["name"]))
    group = collision_group(geom["body"])
    ET.SubElement(parent, "geom", {
        "name": geom["name"], "class": "foot" if foot else "collision", "type": geom["type"],
        "size": _fmt([s for s in geom["size"] if s > 0]), "pos": _fmt(geom["pos"]),
        "quat": _fmt(geom["quat_wxyz"]), "contype": str(GROUP_BIT[group]),
        "conaffinity": str(group_affinity(group)),
    })


def _add_body(parent_el: ET.Element, body: dict, facts: dict, motors: dict) -> None:
    el = ET.SubElement(parent_el, "body", {"name": body["name"], "pos": _fmt(body["pos"]),
                                           "quat": _fmt(body["quat_wxyz"])})
    ET.SubElement(el, "inertial", {"pos": _fmt(body["inertial_pos"]), "quat": _fmt(body["inertial_quat_wxyz"]),
                                   "mass": f"{body['mass']:.10g}", "diaginertia": _fmt(body["diag_inertia"])})
    for joint in facts["joints"]:
        if joint["body"] != body["name"]:
            continue
        if joint["type"] == "free":
            ET.SubElement(el, "freejoint", {"name": joint["name"]})
        else:
            m = motors[joint["name"]]
            ET.SubElement(el, "joint", {"name": joint["name"], "axis": _fmt(joint["axis"]),
                                        "range": _fmt(joint["range"]), "armature": f"{m['armature']:.10g}",
                                        "actuatorfrcrange": _fmt([-m["effort"], m["effort"]])})
    for site in facts["sites"]:
        if site["body"] == body["name"]:
            ET.SubElement(el, "site", {"name": site["name"], "pos": _fmt(site["pos"]), "size": "0.01"})
    children = [b for b in facts["bodies"] if b["parent"] == body["name"]]
    _visual_geoms(el, body, children)
    for geom in facts["collision_geoms"]:
        if geom["body"] == body["name"]:
            _collision_geom(el, geom)
    for child in children:
        _add_body(el, child, facts, motors)


def _joint_values(facts: dict, patterns: dict[str, float]) -> list[float]:
    values = []
    for joint in facts["joints"][1:]:
        hits = [v for p, v in patterns.items() if re.fullmatch(p, joint["name"])]
        values.append(hits[0] if hits else 0.0)
    return values


def _defaults(root: ET.Element) -> None:
    default = ET.SubElement(root, "default")
    ET.SubElement(default, "joint", {"limited": "true", "damping": "0", "frictionloss": "0"})
    ET.SubElement(default, "position", {"ctrllimited": "false", "forcelimited": "true"})
    visual = ET.SubElement(default, "default", {"class": "visual"})
    ET.SubElement(visual, "geom", {"contype": "0", "conaffinity": "0", "group": "2", "density": "0"})
    collision = ET.SubElement(default, "default", {"class": "collision"})
    ET.SubElement(collision, "geom", {"condim": "1", "priority": "0", "group": "3",
                                      "rgba": "0.8 0.3 0.3 0.4", "friction": "1 0.005 0.0001"})
    foot = ET.SubElement(default, "default", {"class": "foot"})
    ET.SubElement(foot, "geom", {"condim": "3", "priority": "1", "group": "3", "rgba": "0.3 0.3 0.8 0.4",
                                 "friction": "0.6 0.005 0.0001"})


def build_robot(facts: dict) -> ET.Element:
    motors = motor_table(facts)
    root = ET.Element("mujoco", {"model": "g1_29dof_mimic_jax"})
    ET.SubElement(root, "compiler", {"angle": "radian", "autolimits": "true"})
    ET.SubElement(root, "option", {"timestep": "0.005", "integrator": "implicitfast", "cone": "pyramidal",
                                   "iterations": "10", "ls_iterations": "20"})
    custom = ET.SubElement(root, "custom")
    ET.SubElement(custom, "numeric", {"name": "max_geom_pairs", "data": str(MJX_MAX_GEOM_PAIRS)})
    _defaults(root)
    world = ET.SubElement(root, "worldbody")
    _add_body(world, facts["bodies"][0], facts, motors)
    actuators = ET.SubElement(root, "actuator")
    for name, m in motors.items():
        ET.SubElement(actuators, "position", {
            "name": name.removesuffix("_joint"), "joint": name, "kp": f"{m['kp']:.10g}",
            "kv": f"{m['kd']:.10g}", "forcerange": _fmt([-m["effort"], m["effort"]])})
    sensors = ET.SubElement(root, "sensor")
    ET.SubElement(sensors, "gyro", {"name": "imu_gyro", "site": "imu_in_pelvis"})
    ET.SubElement(sensors, "accelerometer", {"name": "imu_acc", "site": "imu_in_pelvis"})
    keyframes = ET.SubElement(root, "keyframe")
    home = facts["actuator_classes"]["home_keyframe"]
    for name, z, pose in (("home", home["root_pos"][2], home["joint_pos"]), ("knees_bent", KNEES_BENT_Z, KNEES_BENT)):
        q = [0.0, 0.0, z, 1.0, 0.0, 0.0, 0.0, *_joint_values(facts, pose)]
        ctrl = _joint_values(facts, pose)
        ET.SubElement(keyframes, "key", {"name": name, "qpos": _fmt(q), "ctrl": _fmt(ctrl)})
    return root


def build_scene() -> ET.Element:
    root = ET.Element("mujoco", {"model": "g1_scene"})
    ET.SubElement(root, "include", {"file": ROBOT_XML.name})
    ET.SubElement(root, "statistic", {"center": "0 0 0.8", "extent": "1.6"})
    visual = ET.SubElement(root, "visual")
    ET.SubElement(visual, "headlight", {"diffuse": "0.6 0.6 0.6", "ambient": "0.3 0.3 0.3", "specular": "0 0 0"})
    ET.SubElement(visual, "global", {"azimuth": "140", "elevation": "-20", "offwidth": "1280", "offheight": "720"})
    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "texture", {"type": "skybox", "builtin": "gradient", "rgb1": "0.3 0.5 0.7",
                                     "rgb2": "0 0 0", "width": "512", "height": "512"})
    ET.SubElement(asset, "texture", {"name": "grid", "type": "2d", "builtin": "checker", "rgb1": "0.2 0.3 0.4",
                                     "rgb2": "0.1 0.2 0.3", "width": "512", "height": "512", "mark": "edge",
                                     "markrgb": "0.8 0.8 0.8"})
    ET.SubElement(asset, "material", {"name": "grid", "texture": "grid", "texrepeat": "1 1", "texuniform": "true",
                                      "reflectance": "0.2"})
    world = ET.SubElement(root, "worldbody")
    ET.SubElement(world, "light", {"pos": "0 0 3", "dir": "0 0 -1", "directional": "true"})
    ET.SubElement(world, "geom", {"name": "floor", "type": "plane", "size": "0 0 0.05", "material": "grid",
                                  "contype": str(FLOOR_BIT), "conaffinity": str(sum(GROUP_BIT.values())),
                                  "condim": "3", "friction": "1 0.005 0.0001"})
    ET.SubElement(world, "camera", {"name": "track", "mode": "trackcom", "pos": "2.2 -2.2 1.4",
                                    "xyaxes": "0.707 0.707 0 -0.28 0.28 0.92"})
    return root


def to_text(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    header = "<!-- Generated by mimic_jax.assets.build_g1 from g1_facts.json: do not edit by hand. -->\n"
    return header + ET.tostring(root, encoding="unicode") + "\n"


def write_all() -> None:
    facts = load_facts()
    ROBOT_XML.write_text(to_text(build_robot(facts)))
    SCENE_XML.write_text(to_text(build_scene()))


if __name__ == "__main__":
    write_all()
    print(f"wrote {ROBOT_XML} and {SCENE_XML}")
