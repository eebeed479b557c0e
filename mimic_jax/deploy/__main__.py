"""``python -m mimic_jax.deploy``: run an exported policy folder on MuJoCo C without JAX (see docs/deploy.md).

    python -m mimic_jax.deploy check --onnx export/policy.onnx
    python -m mimic_jax.deploy run --onnx export/policy.onnx --motion motions/clips/walk_forward.npz
    python -m mimic_jax.deploy run --onnx export/policy.onnx --motion walk_forward --video walk.mp4 --json m.json

``--motion`` is a clip file, or the name of the clip inside a deployment-form ONNX. ``--deploy`` defaults to
``deploy.yaml`` beside the ONNX. Imports numpy, onnxruntime, mujoco and PyYAML only (imageio for
``--video``). Every user error prints one ``error: ...`` line and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

EXIT_USAGE = 2
COLUMNS = (("succ", "success_rate", "{:>5.0%}"), ("len s", "mean_episode_length_s", "{:>6.2f}"),
           ("MPJPE-g", "mpjpe_global_mm", "{:>8.1f}"), ("MPJPE-l", "mpjpe_local_mm", "{:>8.1f}"),
           ("q rad", "joint_pos_error_rad", "{:>6.3f}"), ("dq rad/s", "joint_vel_error_rad_s", "{:>8.3f}"),
           ("EE mm", "ee_pos_error_mm", "{:>7.1f}"), ("anc mm", "anchor_pos_error_mm", "{:>7.1f}"),
           ("anc rad", "anchor_ori_error_rad", "{:>7.3f}"))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """argparse's usage errors become one ``error:`` line (no usage dump)."""
        from mimic_jax.deploy.config import DeployError

        raise DeployError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mimic_jax.deploy", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in (("check", "open and check an exported folder"), ("run", "one clean episode on MuJoCo C")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--onnx", type=Path, required=True, help="the exported policy")
        s.add_argument("--deploy", type=Path, help="its deploy.yaml (default: beside the ONNX)")
        if name == "run":
            s.add_argument("--motion", required=True, help="a clip .npz, or the name of the clip inside the ONNX")
            s.add_argument("--label", help="training clip whose one-hot to use (default: the clip's name)")
            s.add_argument("--video", type=Path, help="mp4 (or .gif) of the episode, reference as a ghost")
            s.add_argument("--json", type=Path, help="write the summary and the one-hot choice as JSON")
    return p


def _reference(args, bundle):
    from mimic_jax.deploy import reference
    from mimic_jax.deploy.config import DeployError

    path = Path(args.motion)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DeployError(f"--motion {path}: no such file")
        return reference.from_clip_file(path, bundle.config)
    exported = bundle.config["motion"]["exported"]
    if exported is None or exported["name"] != args.motion:
        inside = f"it holds '{exported['name']}'" if exported else "it holds no clip (export with --onnx-motion)"
        raise DeployError(f"--motion {args.motion}: not a .npz clip file nor the clip inside {bundle.onnx_path} "
                          f"({inside})")
    return reference.from_onnx(bundle.session, bundle.config, bundle.onnx_path)


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
    return path


def format_row(name: str, summary: dict) -> str:
    header = f"{'clip':<16}" + " ".join(f"{h:>{len(fmt.format(0.0))}}" for h, _, fmt in COLUMNS)
    row = f"{name:<16}" + " ".join(fmt.format(summary[k]) for _, k, fmt in COLUMNS)
    return f"{header}\n{row}"


def _run(args) -> None:
    from mimic_jax.deploy.bundle import open_bundle
    from mimic_jax.deploy.runner import one_hot_for, run_episode

    bundle = open_bundle(args.onnx, args.deploy)
    ref = _reference(args, bundle)
    one_hot, chosen = one_hot_for(bundle.config, args.label or ref.name)
    c = bundle.config["control"]
    print(f"{bundle.onnx_path}: clip '{ref.name}' ({ref.frames} frames, {ref.source}), one-hot: {chosen}; "
          f"{c['control_hz']:g} Hz, {c['decimation']} x {c['physics_dt'] * 1000:g} ms physics steps on MuJoCo C")
    episode = run_episode(bundle, ref, one_hot)
    print(format_row(ref.name, episode.summary))
    if episode.termination:
        print(f"terminated: {episode.termination}")
    if args.json:
        data = {"onnx": str(bundle.onnx_path), "deploy": str(bundle.deploy_path), "clip": ref.name,
                "clip_source": ref.source, "one_hot": chosen, "summary": episode.summary}
        print(f"wrote {_write_json(args.json, data)}")
    if args.video:
        from mimic_jax.deploy.video import write_video

        print(f"wrote {write_video(args.video, bundle, ref, episode)}")


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 done, 2 user error)."""
    from mimic_jax.deploy.config import DeployError

    try:
        args = build_parser().parse_args(argv)
        if args.command == "run" and args.video:
            if args.video.suffix.lower() not in (".mp4", ".gif"):
                raise DeployError(f"--video must end in .mp4 or .gif, got {args.video.name}")
            if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
                os.environ["MUJOCO_GL"] = "egl"  # read when mujoco is imported, which happens after this
        if args.command == "check":
            from mimic_jax.deploy.bundle import open_bundle

            bundle = open_bundle(args.onnx, args.deploy)
            obs = bundle.config["observation"]
            print(f"ok: {bundle.onnx_path} and {bundle.deploy_path} agree; observation {obs['size']} "
                  f"({len(obs['terms'])} terms), {len(bundle.config['joints']['names'])} joints, model checksums match")
        else:
            _run(args)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
