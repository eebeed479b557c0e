"""The dataset card's short markdown summary (``card.md``) and the text of ``collect info``, from ``card.json``."""

from __future__ import annotations

import numpy as np


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _range(values) -> str:
    flat = np.asarray(values, np.float64).ravel()
    return f"{flat.min():.3g} .. {flat.max():.3g}" if flat.size else "-"


def _header(card: dict) -> list[str]:
    teacher, noise, delay, env = card["teacher"], card["noise"], card["delay"], card["environment"]
    rate = card["control_hz"]
    source = f"pretrained `{teacher['pretrained']}` ({teacher['run']})" if teacher.get("pretrained") \
        else f"`{teacher['run']}`"
    return [
        f"# Demonstration data: {card['windows']} windows, {card['frames']} frames",
        "",
        f"- windows: {card['window_steps']} steps ({card['window_steps'] / rate:g} s at {rate:g} Hz), kept from "
        f"control step {card['window_start']} of episodes run for {card['run_steps']} steps "
        f"({card['run_steps'] / rate:g} s); mirror copies: {card['mirrored_windows']}",
        f"- size: {_mb(card['bytes'])} in {len(card['fields'])} fields",
        f"- teacher: {source}, iteration {teacher['iteration']}, motion set `{teacher['motion_set']}`",
        f"- noise: Ornstein-Uhlenbeck theta {noise['theta']:g}, sigma {noise['sigma']:g}, mu {noise['mu']:g}, "
        f"dt {noise['dt']:g} (stationary std {noise['stationary_std']:.4f}), normalized action units",
        f"- delay: uniform 0..{delay['max_steps']} control steps per episode; accepted/run per delay: "
        + ", ".join(f"{d}: {a}/{r}" for d, (a, r) in enumerate(zip(delay['accepted'], delay['episodes']))),
        f"- environment: {env['impl']}, randomization {env['randomization']}, pushes {env['pushes']}, "
        f"observation noise {env['observation_noise']}",
    ]


def _episodes(card: dict) -> list[str]:
    e = card["episodes"]
    return ["", "## Episodes", "",
            f"{e['run']} run, {e['accepted']} accepted, {e['fell']} rejected (fell before "
            f"{card['run_steps'] / card['control_hz']:g} s), {e['short']} rejected (clip too short for a window), "
            f"{e['not_kept']} accepted but beyond the requested size.", "",
            "| clip | frames | episodes | accepted | windows kept |", "|---|---:|---:|---:|---:|"] + [
        f"| {c['name']} | {c['frames']} | {c['episodes']} | {c['accepted']} | {c['windows']} |" for c in card["clips"]]


def _fields(card: dict) -> list[str]:
    lines = ["", "## Fields and normalization statistics", "",
             "Per-dimension mean, std, min and max are in `card.json` (`statistics`); ranges over dimensions here.",
             "", "| field | shape | dtype | size | mean | std |", "|---|---|---|---:|---|---|"]
    for name, f in card["fields"].items():
        s = card["statistics"].get(name)
        mean, std = (_range(s["mean"]), _range(s["std"])) if s else ("", "")
        lines.append(f"| `{name}` | {f['shape']} | {f['dtype']} | {_mb(f['bytes'])} | {mean} | {std} |")
    return lines


def markdown(card: dict) -> str:
    """card.md: sizes, clips, teacher, noise, delay, rejection counts, statistics."""
    collection = card.get("collection", {})
    tail = []
    if collection:
        tail = ["", f"Collected on {collection.get('device', '?')} in {collection.get('seconds', 0):.1f} s "
                f"({collection.get('frames_per_s', 0):.0f} accepted frames/s, compilation included), "
                f"{collection.get('num_envs')} environments, seed {collection.get('seed')}, "
                f"{collection.get('created_by', 'python -m mimic_jax.collect')}."]
    return "\n".join(_header(card) + _episodes(card) + _fields(card) + tail) + "\n"
