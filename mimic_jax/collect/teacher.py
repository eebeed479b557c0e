"""The teacher: a trained tracker (``--run RUN`` or ``--pretrained NAME``) and the clips it collects on.

The collection set must be the teacher's own clips: every clip known to it by name (a set with others is
refused), as many as its motion one-hot has (another count is another observation layout), with the same data
(fingerprint). The set may list them in another order; the library is built in the teacher's order so that a
clip's one-hot is the one the teacher learned. Every refusal is one line (:class:`TeacherError`,
``checkpoint.CheckpointError``, ``motion.sets.MotionSetError`` or ``evaluation.rollout.PolicyError``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from mimic_jax.checkpoint import LoadedRun, check_compatible, load_run
from mimic_jax.collect import pretrained
from mimic_jax.evaluation.rollout import Policy, policy_from_run
from mimic_jax.motion.library import MotionLibrary, build_library
from mimic_jax.motion.sets import MotionSetError, load_motion_set, resolve_motion_set


class TeacherError(ValueError):
    """A teacher that does not fit the clips asked for; one line."""


@dataclasses.dataclass(frozen=True)
class Teacher:
    run: LoadedRun
    policy: Policy  # networks, parameters, normalizer, training env config, clip names
    lib: MotionLibrary  # the collection clips, in the teacher's order
    motion_set: str  # the set text asked for
    pretrained: str | None

    def describe(self) -> dict:
        """The card's ``teacher`` entry."""
        return {"run": str(self.run.run_dir), "checkpoint": str(self.run.checkpoint), "pretrained": self.pretrained,
                "iteration": self.run.iteration, "env_steps": self.run.env_steps, "motion_set": self.run.motion_set,
                "fingerprint": self.run.fingerprint, "clips": list(self.run.motion_names)}


def _spec(text: str, run: LoadedRun, explicit: bool):
    """The collection set; the teacher's own set falls back to the absolute paths its run stored."""
    try:
        return resolve_motion_set(text)
    except MotionSetError:
        fallback = run.meta.get("run", {}).get("motion_set_resolved")
        if explicit or not fallback:
            raise
        return resolve_motion_set(fallback)


def _teacher_order(clips, run: LoadedRun, text: str):
    """(clips, names) of the set in the teacher's order; refuses unknown clips and another clip count."""
    names = [name for name, _, _ in clips]
    known = list(run.motion_names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TeacherError(f"motion set '{text}': clips {', '.join(unknown)} are not among the teacher's "
                           f"{len(known)} clips ({', '.join(known)})")
    if len(set(names)) != len(known):
        missing = [n for n in known if n not in names]
        raise TeacherError(f"motion set '{text}' has {len(set(names))} of the teacher's {len(known)} clips (its "
                           f"observation has a one-hot of {len(known)}; missing: {', '.join(missing)}); collect on "
                           f"the teacher's own set")
    by_name = {name: clip for name, clip, _ in clips}
    return [by_name[n] for n in known], known


def load_teacher(*, run: Path | None = None, pretrained_name: str | None = None,
                 motion_set: str | None = None) -> Teacher:
    """The teacher and its collection library; refuses (one line) what does not fit."""
    if (run is None) == (pretrained_name is None):
        raise TeacherError("give exactly one of --run RUN and --pretrained NAME")
    path = pretrained.resolve(pretrained_name) if pretrained_name else Path(run)
    loaded = load_run(path)
    policy = policy_from_run(loaded)  # PolicyError: parameters of another observation layout
    text = motion_set or loaded.motion_set
    spec = _spec(text, loaded, explicit=motion_set is not None)
    clips, names = _teacher_order(load_motion_set(spec, progress=sys.stderr.isatty()), loaded, text)
    lib = build_library(clips, names)
    check_compatible({**loaded.meta, "checkpoint": str(loaded.checkpoint)}, lib)  # model and clip data
    return Teacher(run=loaded, policy=policy, lib=lib, motion_set=text, pretrained=pretrained_name)
