"""Figures of docs/motions.md: one plot and one rendered image per clip family of the synthesized clips.

    python experiments/synth_figures.py [docs/img]

Writes synth_locomotion_plot.png (walk_forward: footprints, COM and ZMP from above; sole heights, knee
angles and support margin over time), synth_locomotion_frames.png (walk_forward, side view),
synth_skills_plot.png (jump_small: pelvis and sole heights, knee angle, flight phases) and
synth_skills_frames.png (one key moment of each skill).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mimic_jax.assets import g1  # noqa: E402
from mimic_jax.motion import quality, synth, viz  # noqa: E402
from mimic_jax.motion.clip import load_clip  # noqa: E402

J = {n: i for i, n in enumerate(g1.JOINT_NAMES)}


def _clip(name):
    return load_clip(synth.CLIPS_DIR / f"{name}.npz")


def locomotion_plot(out: Path, model) -> None:
    clip = _clip("walk_forward")
    t = np.arange(clip.num_frames) / clip.fps
    kin = viz.kinematic_pass(clip, model)
    com, zmp = kin["com"], viz.zmp(kin["com"], clip.fps)
    fig, axes = plt.subplots(4, 1, figsize=(9, 9.5), gridspec_kw={"height_ratios": (1.3, 1, 1, 1)})
    ax = axes[0]
    for side, colour in (("left", "tab:blue"), ("right", "tab:red")):
        on = kin[side][:, :, 2].min(axis=1) < quality.CONTACT_HEIGHT
        for f in np.nonzero(on)[0][::5]:
            hull = quality.convex_hull(kin[side][f, :, :2])
            ax.fill(hull[:, 0], hull[:, 1], color=colour, alpha=0.05, lw=0)
    ax.plot(com[:, 0], com[:, 1], "k", lw=1.5, label="COM")
    ax.plot(zmp[:, 0], zmp[:, 1], color="tab:green", lw=0.8, label="ZMP (cart-table)")
    ax.set(title="walk_forward from above: footprints in contact (left blue, right red)", xlabel="x (m)",
           ylabel="y (m)", aspect="equal")
    ax.legend(fontsize=8, loc="upper left")
    for side, colour in (("left", "tab:blue"), ("right", "tab:red")):
        axes[1].plot(t, 100 * kin[side][:, :, 2].min(axis=1), colour, label=f"{side} sole")
        axes[2].plot(t, clip.joint_pos[:, J[f"{side}_knee_joint"]], colour, label=f"{side} knee")
        axes[2].plot(t, clip.joint_pos[:, J[f"{side}_ankle_pitch_joint"]], colour, ls="--", label=f"{side} ankle pitch")
    axes[1].axhline(100 * quality.CONTACT_HEIGHT, color="grey", ls=":", lw=1, label="contact band")
    axes[1].set(ylabel="sole height (cm)")
    axes[2].set(ylabel="rad")
    margin = viz.support_margins(kin)
    on = [kin[side][:, :, 2].min(1) < quality.CONTACT_HEIGHT for side in ("left", "right")]
    both = on[0] & on[1]
    axes[3].plot(t, 100 * margin, "k", lw=0.8, label="COM margin")
    axes[3].plot(t, 100 * np.where(both, margin, np.nan), "k", lw=2.5, label="  in double support")
    axes[3].plot(t, 100 * viz.support_margins(kin, zmp), color="tab:green", lw=0.8, label="ZMP margin")
    axes[3].axhline(0, color="grey", lw=0.8)
    axes[3].set(ylabel="inside support (cm)", xlabel="time (s)")
    for ax in axes[1:]:
        ax.legend(fontsize=7, ncol=4, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=60)
    plt.close(fig)


def skills_plot(out: Path, model) -> None:
    clip = _clip("jump_small")
    t = np.arange(clip.num_frames) / clip.fps
    kin = viz.kinematic_pass(clip, model)
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    soles = np.stack([kin[s][:, :, 2].min(axis=1) for s in ("left", "right")], axis=1)
    flight = soles.min(axis=1) >= quality.CONTACT_HEIGHT
    for ax in axes:
        for f in np.nonzero(flight)[0]:
            ax.axvspan(t[f] - 0.01, t[f] + 0.01, color="orange", alpha=0.3, lw=0)
    axes[0].plot(t, clip.root_pos[:, 2], "k", label="pelvis height")
    axes[0].plot(t, kin["com"][:, 2], "tab:purple", label="COM height")
    axes[0].set(title="jump_small (orange: both soles above the 1 cm contact band)", ylabel="m")
    axes[1].plot(t, 100 * soles[:, 0], "tab:blue", label="left sole")
    axes[1].plot(t, 100 * soles[:, 1], "tab:red", ls="--", label="right sole")
    axes[1].set(ylabel="cm")
    axes[2].plot(t, clip.joint_pos[:, J["left_knee_joint"]], "k", label="knee")
    axes[2].plot(t, clip.joint_pos[:, J["left_hip_pitch_joint"]], "tab:gray", label="hip pitch")
    axes[2].plot(t, clip.joint_pos[:, J["left_ankle_pitch_joint"]], "tab:brown", label="ankle pitch")
    axes[2].set(ylabel="rad", xlabel="time (s)")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower right", ncol=3)
    fig.tight_layout()
    fig.savefig(out, dpi=60)
    plt.close(fig)


def render(clip, frame: int, width: int, height: int, azimuth: float, distance: float = 2.2):
    viz.ensure_gl()
    import mujoco

    model = g1.load_model()
    data = mujoco.MjData(model)
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.distance, cam.azimuth, cam.elevation = distance, azimuth, -10.0
    data.qpos[:] = g1.qpos_from(clip.root_pos[frame], clip.root_quat[frame], clip.joint_pos[frame])
    mujoco.mj_forward(model, data)
    cam.lookat[:] = clip.root_pos[frame] - np.array([0.0, 0.0, 0.25])
    with mujoco.Renderer(model, height, width) as renderer:
        renderer.update_scene(data, cam)
        return renderer.render().copy()


def strip(tiles, labels, out: Path) -> None:
    fig, axes = plt.subplots(1, len(tiles), figsize=(1.6 * len(tiles), 2.4))
    for ax, image, label in zip(axes, tiles, labels):
        ax.imshow(image)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.tight_layout(pad=0.2)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model = g1.load_model()
    locomotion_plot(out_dir / "synth_locomotion_plot.png", model)
    skills_plot(out_dir / "synth_skills_plot.png", model)
    walk = _clip("walk_forward")
    times = [1.0, 3.3, 3.45, 3.6, 3.75, 3.9]
    strip([render(walk, int(s * 50), 200, 300, 90.0) for s in times], [f"{s:.2f} s" for s in times],
          out_dir / "synth_locomotion_frames.png")
    moments = [("squat", 3.0, 120), ("lunge", 4.8, 90), ("arm_wave", 4.0, 150), ("kick", 3.3, 90),
               ("jump_small", 2.68, 120), ("crouch_walk", 5.0, 90)]
    strip([render(_clip(n), int(s * 50), 200, 300, az) for n, s, az in moments], [n for n, _, _ in moments],
          out_dir / "synth_skills_frames.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/img"))
