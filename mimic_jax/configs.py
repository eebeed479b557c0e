"""The config library: field checks, the dict (JSON) round trip and ``--set key=value`` overrides.

Every config is a frozen, keyword-only dataclass whose defaults are the published figures. Its fields say
what they accept through their types, and nothing else holds that knowledge:

- choices are ``Literal`` types (``on_clip_end: Literal["resample", "truncate"]``);
- numeric ranges are ``Annotated`` markers (``num_envs: PositiveInt``, ``gamma: UnitFloat``);
- ``check_fields(self)`` in the config's ``__post_init__`` enforces both, so a config built in code, from
  ``--set``, from a flag or from a stored checkpoint goes through the same check.

The dict round trip uses dacite (strict: unknown keys and wrong types are errors); ``--set`` values are
parsed by tyro's constructor for the field's type (the parser behind tyro command lines), after a small
text mapping (``a,b`` lists, ``none``, ``on/off``). Every error here is one line naming the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Annotated, Any

# -- field markers ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric field's interval (bounds are optional); a value outside it, or a NaN, is refused."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        low = (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
        if low and (self.le is None or value <= self.le):
            return None
        parts = [f">= {self.ge:g}" if self.ge is not None else "", f"> {self.gt:g}" if self.gt is not None else "",
                 f"<= {self.le:g}" if self.le is not None else ""]
        return f"must be {' and '.join(p for p in parts if p)}, got {value}"


@dataclasses.dataclass(frozen=True)
class Ascending:
    """A ``(low, high)`` pair with low <= high."""

    def problem(self, value) -> str | None:
        if not isinstance(value, tuple) or len(value) != 2:
            return f"must be a (low, high) pair, got {value!r}"
        return None if value[0] <= value[1] else f"must be (low, high) with low <= high, got {tuple(value)}"


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
UnitFloat = Annotated[float, Range(ge=0, le=1)]
FiniteFloat = Annotated[float, Range()]
NonNegativeInterval = Annotated[tuple[NonNegativeFloat, NonNegativeFloat], Ascending()]


class ConfigValueError(ValueError):
    """A config field holding a value its type refuses; ``owner`` is the config class, ``field`` the name."""

    def __init__(self, owner: type, field: str, problem: str):
        super().__init__(f"{owner.__name__}.{field} {problem}")
        self.owner, self.field, self.problem = owner, field, problem


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _is_union(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def value_problem(value, tp) -> str | None:
    """Why ``value`` does not fit the choices and ranges of ``tp`` (None if it does); types are not checked."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        base = value_problem(value, args[0])
        return base or next((p for m in tp.__metadata__ if hasattr(m, "problem") for p in [m.problem(value)] if p),
                            None)
    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        return value_problem(value, next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return None if value in args else f"{value!r} is not one of {', '.join(map(repr, args))}"
    if origin is tuple and isinstance(value, tuple):
        kinds = [args[0]] * len(value) if args[-1:] == (Ellipsis,) else list(args)
        return next((p for v, k in zip(value, kinds) for p in [value_problem(v, k)] if p), None)
    return None


def check_fields(cfg) -> None:
    """Raises :class:`ConfigValueError` for the first field of ``cfg`` outside its choices or range."""
    for name, tp in _hints(type(cfg)).items():
        problem = value_problem(getattr(cfg, name), tp)
        if problem:
            raise ConfigValueError(type(cfg), name, problem)


# -- paths ----------------------------------------------------------------------------------------------------
def setting_types(cls, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted path of ``cls`` (leaves only) -> its type (markers kept)."""
    out = {}
    for name, tp in _hints(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(setting_types(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


def config_paths(cls, prefix: str = "") -> dict[type, str]:
    """Config class -> its dotted prefix inside ``cls`` (``{EnvConfig: 'env.', RewardConfig: 'env.rewards.'}``)."""
    out = {cls: prefix}
    for name, tp in _hints(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(config_paths(tp, f"{prefix}{name}."))
    return out


def dotted(exc: ConfigValueError, root) -> str:
    """``'ppo.num_envs: must be >= 1, got 0'`` for an error raised by a config nested in ``root``."""
    return f"{config_paths(root).get(exc.owner, exc.owner.__name__ + '.')}{exc.field}: {exc.problem}"


# -- dict round trip --------------------------------------------------------------------------------------
class ConfigDictError(ValueError):
    """A stored config that does not fit the config classes; one line naming the dotted key."""


def to_dict(cfg) -> dict:
    """Nested frozen dataclasses -> nested dicts of plain values (tuples stay tuples until JSON)."""
    return {f.name: (to_dict(v) if dataclasses.is_dataclass(v) else v)
            for f in dataclasses.fields(cfg) for v in [getattr(cfg, f.name)]}


def _unknown_key(d, cls, prefix: str = "") -> str | None:
    names = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for key, value in d.items():
        if key not in names:
            return f"{prefix}{key}"
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            found = _unknown_key(value, hints[key], f"{prefix}{key}.")
            if found:
                return found
    return None


def from_dict(d, cls, renamed: typing.Mapping[str, str] = types.MappingProxyType({})):
    """Nested dicts (e.g. read from JSON) -> ``cls``: missing keys take the defaults, unknown keys, wrong types
    and values outside a field's choices or range raise :class:`ConfigDictError`. ``renamed`` maps old
    dotted keys of stored configs to their current names."""
    import dacite

    if not isinstance(d, dict):
        raise ConfigDictError(f"expected a mapping, got {d!r}")
    d = _renamed(d, renamed)
    try:
        return dacite.from_dict(cls, d, dacite.Config(strict=True, cast=[tuple]))
    except dacite.UnexpectedDataError:
        raise ConfigDictError(f"unknown keys ['{_unknown_key(d, cls)}']") from None
    except dacite.WrongTypeError as exc:
        problem = value_problem(exc.value, exc.field_type)
        if not problem:
            name = getattr(typing.get_origin(exc.field_type), "__name__", getattr(exc.field_type, "__name__", None))
            problem = f"expected {name or exc.field_type}, got {exc.value!r}"
        raise ConfigDictError(f"{exc.field_path}: {problem}") from None
    except ConfigValueError as exc:
        raise ConfigDictError(dotted(exc, cls)) from None
    except dacite.DaciteError as exc:
        raise ConfigDictError(str(exc)) from None


def _renamed(d: dict, renamed) -> dict:
    out = copy.deepcopy(d)
    for old, new in renamed.items():
        *head, leaf = old.split(".")
        node = out
        for part in head:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[new.split(".")[-1]] = node.pop(leaf)
    return out


# -- --set key=value --------------------------------------------------------------------------------------
class SettingError(ValueError):
    """A ``--set`` override that cannot be applied; one line naming the key and the problem."""


_BOOL_TEXT = {"true": "True", "yes": "True", "on": "True", "1": "True",
              "false": "False", "no": "False", "off": "False", "0": "False"}


def _tokens(text: str, tp) -> list[str]:
    """``--set`` text -> the argument tokens tyro expects for ``tp``."""
    core = typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp
    if text.strip().lower() in ("none", "null") and _is_union(core) and type(None) in typing.get_args(core):
        return ["None"]
    inner = next((a for a in typing.get_args(core) if a is not type(None)), core) if _is_union(core) else core
    if typing.get_origin(inner) is tuple:
        body = text.strip().strip("()[]").strip()
        return [s.strip() for s in body.split(",") if s.strip()] if body else []
    if inner is bool:
        if text.strip().lower() not in _BOOL_TEXT:
            raise SettingError(f"'{text}' is not a boolean (true/false, yes/no, on/off, 1/0)")
        return [_BOOL_TEXT[text.strip().lower()]]
    return [text.strip()]


def parse_value(text: str, tp, key: str):
    """The value of ``--set key=text`` for a field of type ``tp``, parsed by tyro (choices and counts checked)."""
    from tyro.constructors import ConstructorRegistry, PrimitiveTypeInfo

    spec = ConstructorRegistry.get_primitive_spec(PrimitiveTypeInfo.make(tp, set()))
    try:
        tokens = _tokens(text, tp)
    except SettingError as exc:
        raise SettingError(f"{key}: {exc}") from None
    if isinstance(spec.nargs, int) and len(tokens) != spec.nargs:
        raise SettingError(f"{key}: expected {spec.nargs} comma-separated values, got '{text}'")
    if spec.choices is not None and len(tokens) == 1 and tokens[0] not in spec.choices:
        choices = ", ".join(repr(c) for c in spec.choices)
        raise SettingError(f"{key}: '{text}' is not one of {choices}")
    try:
        return spec.instance_from_str(tokens)
    except ValueError:
        metavar = spec.metavar.strip("{}").lower() if spec.metavar else "value"
        raise SettingError(f"{key}: '{text}' is not a valid {metavar}") from None


def _replace(cfg, parts: list[str], value):
    if len(parts) == 1:
        return dataclasses.replace(cfg, **{parts[0]: value})
    return dataclasses.replace(cfg, **{parts[0]: _replace(getattr(cfg, parts[0]), parts[1:], value)})


def _unknown_setting(key: str, kinds) -> SettingError:
    close = difflib.get_close_matches(key, list(kinds), n=3, cutoff=0.6)
    if not close:
        close = [k for k in kinds if k.endswith("." + key.split(".")[-1])][:3]
    hint = f" (did you mean {', '.join(close)}?)" if close else " (settings are dotted paths such as ppo.num_envs)"
    return SettingError(f"unknown setting '{key}'{hint}")


def apply_setting(cfg, item: str):
    """One ``key=value`` override of the config ``cfg``; every problem raises a one-line :class:`SettingError`."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SettingError(f"--set expects key=value (e.g. ppo.learning_rate=3e-4), got '{item}'")
    kinds = setting_types(type(cfg))
    if key not in kinds:
        raise _unknown_setting(key, kinds)
    value = parse_value(text, kinds[key], key)
    try:
        return _replace(cfg, key.split("."), value)
    except ConfigValueError as exc:
        raise SettingError(f"{key}={text.strip()}: {exc.problem}") from None


def apply_settings(cfg, items):
    """Applies ``key=value`` overrides in order."""
    for item in items or ():
        cfg = apply_setting(cfg, item)
    return cfg
