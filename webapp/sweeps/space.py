"""Search spaces: their shape, the values each key can take, and the check of those values
against the trainer's own schema (``trainer.config.parse_config`` through ``resolve_config``).

A key is a dotted config path (`train.lr`, or `cube.lattice.2` for one item of a list). A
categorical choice may be any YAML value, a lattice `[8, 8, 6]` included; Optuna only takes
scalars, so list and mapping choices travel through Optuna as compact JSON strings
(``encode_choice``) and come back as the value itself (``decode_params``): trials, runs and
pages only ever see real config values.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any, Optional

from trainer.config import ConfigError, ConfigIssue, check_dimension, read_yaml
from webapp.configs.actions import ConfigRejected, resolve_config, teacher_dimension

TYPES = ("float", "int", "categorical")
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
MAX_GRID = 10_000
# A discrete range up to this many values is checked value by value; a longer one by its
# bounds, its grid points and this many evenly spaced values (each check is ~0.1 ms).
MAX_CHECKED = 1_000
SAMPLED = 100
LATTICE_TEXT = re.compile(r"\s*\d+(\s*[x×,]\s*\d+)+\s*")


class SpaceError(ValueError):
    """The search space is invalid; ``errors`` is [{path, message}], path = the config key."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


# --- shape ------------------------------------------------------------------------------------

def parse_space(text_or_mapping: Any) -> dict[str, dict[str, Any]]:
    """YAML text or a mapping -> {key: spec}; SpaceError for shape problems (not yet checked
    against the trainer schema: see ``validate_space``)."""
    try:
        raw = read_yaml(text_or_mapping) if isinstance(text_or_mapping, str) else copy.deepcopy(text_or_mapping)
    except ConfigError as error:
        raise SpaceError(error.as_list()) from None
    if not isinstance(raw, dict) or not raw:
        raise SpaceError([{"path": "", "message": "the search space must be a non-empty mapping of config keys"}])
    errors: list[dict[str, str]] = []
    space: dict[str, dict[str, Any]] = {}
    for key, spec in raw.items():
        key = str(key)
        try:
            space[key] = _parse_spec(key, spec)
        except ValueError as error:
            errors.append({"path": key, "message": str(error)})
    if errors:
        raise SpaceError(errors)
    return space


def _parse_spec(key: str, spec: Any) -> dict[str, Any]:
    """One key's spec, normalised; ValueError saying what is wrong with it."""
    if not KEY.fullmatch(key):
        raise ValueError("must be a dotted config key like `train.lr` (or `cube.lattice.2` for a list item)")
    if not isinstance(spec, dict):
        raise ValueError("must be a mapping like {type: float, low: 0.0001, high: 0.01}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)} (got {kind!r})")
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices", "values"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    if kind == "categorical":
        return {"type": kind, "choices": _parse_choices(spec.get("choices"))}
    low, high = spec.get("low"), spec.get("high")
    number = int if kind == "int" else (int, float)
    if not _is(low, number) or not _is(high, number):
        raise ValueError(f"{kind} needs numeric `low` and `high`" + (" (integers)" if kind == "int" else ""))
    if not all(math.isfinite(v) for v in (low, high)):
        raise ValueError("low and high must be finite numbers")
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")
    log_scale = bool(spec.get("log", False))
    if log_scale and low <= 0:
        raise ValueError("a log scale needs low > 0")
    step = spec.get("step")
    if step is not None and (not _is(step, number) or not math.isfinite(step) or step <= 0 or log_scale):
        raise ValueError("step must be a positive number and cannot be combined with log")
    entry = {"type": kind, "low": low if kind == "int" else float(low),
             "high": high if kind == "int" else float(high), "log": log_scale}
    if step is not None:
        entry["step"] = step
    if spec.get("values") is not None:
        values = spec["values"]
        if not isinstance(values, list) or not values or any(
                not _is(v, number) or not (low <= v <= high) for v in values):
            raise ValueError("values (grid points) must be a non-empty list inside [low, high]")
        entry["values"] = values
    return entry


def _is(value: Any, number: Any) -> bool:
    return isinstance(value, number) and not isinstance(value, bool)


def _parse_choices(choices: Any) -> list[Any]:
    """The choices as plain JSON values (a tuple becomes a list); ValueError when one is not
    a YAML value or two are the same for Optuna."""
    if isinstance(choices, tuple):
        choices = list(choices)
    if not isinstance(choices, list) or not choices:
        raise ValueError("categorical needs a non-empty list `choices`")
    try:
        choices = [json.loads(json.dumps(choice, allow_nan=False)) for choice in choices]
    except (TypeError, ValueError):
        raise ValueError("choices must be strings, numbers, booleans, null, or lists and mappings of them "
                         "(e.g. a lattice [8, 8, 6])") from None
    seen: set[str] = set()
    for choice in choices:
        signature = json.dumps(encode_choice(choice))
        if signature in seen:
            raise ValueError(f"the choice {show(choice)} is listed twice")
        seen.add(signature)
    return choices


# --- values -----------------------------------------------------------------------------------

def encode_choice(choice: Any) -> Any:
    """The choice as Optuna's CategoricalDistribution takes it: scalars as they are, a list or
    mapping as compact JSON (`[8,8,6]`)."""
    if isinstance(choice, (list, dict)):
        return json.dumps(choice, separators=(",", ":"), sort_keys=True)
    return choice


def encode_params(space: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Config values -> Optuna's params (see ``encode_choice``)."""
    return {key: encode_choice(value) if space.get(key, {}).get("type") == "categorical" else value
            for key, value in params.items()}


def decode_params(space: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's params -> config values: an encoded choice becomes the choice it stands for."""
    decoded = {}
    for key, value in params.items():
        spec = space.get(key, {})
        if spec.get("type") == "categorical":
            value = next((copy.deepcopy(c) for c in spec["choices"] if encode_choice(c) == value), value)
        decoded[key] = value
    return decoded


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: 7, "mlp", [8, 8, 6]."""
    return json.dumps(value, ensure_ascii=False)


def describe(value: Any) -> str:
    """A short label for run names: 0.001, gmlp, 8×8×6."""
    if isinstance(value, list) and value and all(_is(side, int) for side in value):
        return "×".join(str(side) for side in value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def grid_values(spec: dict[str, Any]) -> Optional[list[Any]]:
    """A key's grid points, or None when a float has neither `values` nor `step`."""
    if spec.get("values"):
        return list(spec["values"])
    if spec["type"] == "categorical":
        return list(spec["choices"])
    if spec["type"] == "int":
        return list(range(spec["low"], spec["high"] + 1, spec.get("step") or 1))
    if spec.get("step"):
        count = int(math.floor((spec["high"] - spec["low"]) / spec["step"] + 1e-9)) + 1
        return [round(spec["low"] + i * spec["step"], 12) for i in range(count)]
    return None


def grid_size(space: dict[str, dict[str, Any]]) -> Optional[int]:
    sizes = [_count(spec) for spec in space.values()]
    if any(size is None for size in sizes):
        return None
    return math.prod(sizes)


def _count(spec: dict[str, Any]) -> Optional[int]:
    """How many grid points a key has, without listing them (a range may be huge)."""
    if spec.get("values"):
        return len(spec["values"])
    if spec["type"] == "categorical":
        return len(spec["choices"])
    step = spec.get("step") or (1 if spec["type"] == "int" else None)
    if step is None:
        return None
    return int(math.floor((spec["high"] - spec["low"]) / step + 1e-9)) + 1


def check_method(method: str, space: dict[str, dict[str, Any]]) -> None:
    if method != "grid":
        return
    errors = [{"path": key, "message": "a grid needs `values` or `step` for a float"}
              for key, spec in space.items() if _count(spec) is None]
    if errors:
        raise SpaceError(errors)
    if grid_size(space) > MAX_GRID:
        raise SpaceError([{"path": "", "message": f"the grid has {grid_size(space)} points (at most {MAX_GRID})"}])


def checked_values(spec: dict[str, Any]) -> list[Any]:
    """The values ``validate_space`` tries for a key: every choice; every value of a discrete
    range up to MAX_CHECKED, else its bounds and an even sample; a continuous range's bounds and
    grid points."""
    if spec["type"] == "categorical":
        return list(spec["choices"])
    values = [spec["low"], spec["high"]] + list(spec.get("values") or [])
    count = _count({key: value for key, value in spec.items() if key != "values"})
    if count is not None:
        step = spec.get("step") or 1
        indices = range(count) if count <= MAX_CHECKED else \
            sorted({round(i * (count - 1) / (SAMPLED - 1)) for i in range(SAMPLED)})
        values += [spec["low"] + i * step if spec["type"] == "int" else round(spec["low"] + i * step, 12)
                   for i in indices]
    return list(dict.fromkeys(values))


# --- configs ----------------------------------------------------------------------------------

def set_key(data: dict, key: str, value: Any) -> None:
    """Set a dotted key in a config mapping, creating missing mappings on the way; a numeric
    part indexes a list (`cube.lattice.2`). ConfigError naming the key when a parent is neither
    a mapping nor a list, or the index is outside the list."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([ConfigIssue(key, f"`{where}` is a list of {len(node)} items: `{part}` must be an "
                                                    f"index from 0 to {len(node) - 1}")])
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if depth < len(parts) - 1:
                node.setdefault(part, {})
        else:
            raise ConfigError([ConfigIssue(key, f"cannot set `{key}`: `{where}` is {show(node)}, not a mapping or "
                                                "a list")])
        if depth == len(parts) - 1:
            node[index] = copy.deepcopy(value)
        else:
            node = node[index]


def apply_params(base_config_yaml: str, params: dict[str, Any]) -> dict:
    data = read_yaml(base_config_yaml)
    for key, value in params.items():
        set_key(data, key, value)
    return data


def validate_space(base_config_yaml: str, space: dict[str, dict[str, Any]], *, data_path: Optional[str] = None,
                   data_kind: Optional[str] = None) -> None:
    """SpaceError unless the base config is valid and every key, set to each of its
    ``checked_values``, still gives a valid trainer config, with the cube's input dimension
    where it can be known (a lattice must hold it exactly). The base config's own problems are
    reported with path `base_config.<path>`; a key's as "<value> is not valid: <why>"."""
    try:
        base = read_yaml(base_config_yaml)
        if not isinstance(base, dict):
            raise SpaceError([{"path": "base_config", "message": "the base config must be a YAML mapping"}])
        parsed = resolve_config(config=base, data_path=data_path, data_kind=data_kind)
    except ConfigError as error:
        raise SpaceError([{"path": "base_config", "message": e["message"]} for e in error.as_list()]) from None
    except ConfigRejected as error:
        raise SpaceError([{"path": f"base_config.{e['path']}".rstrip("."), "message": e["message"]}
                          for e in error.errors]) from None
    dim = None if any(key.split(".")[0] == "teachers" for key in space) else _input_dimension(parsed)
    errors = []
    for key, spec in space.items():
        errors += [{"path": key, "message": message}
                   for message in _key_problems(base, key, spec, dim, data_path, data_kind)]
    if errors:
        raise SpaceError(errors)


def _input_dimension(parsed) -> Optional[int]:
    """The cube's input dimension as a run's pre-flight knows it (a known teacher, or a local
    teacher folder's config.json); None when it cannot be known here."""
    if teacher_dimension(parsed) is not None:
        return None  # resolve_config already checks every value against it
    from webapp.runs.preflight import PreflightRejected, check_teachers, input_dimension

    try:
        return input_dimension(parsed, check_teachers(parsed))
    except PreflightRejected:  # a teacher that cannot load: queueing the trial says so
        return None


def _key_problems(base: dict, key: str, spec: dict[str, Any], dim: Optional[int], data_path: Optional[str],
                  data_kind: Optional[str]) -> list[str]:
    """"<value> is not valid: <why>" for each bad choice, or for a range its first bad value
    (naming how many more are bad); the reason any value would fail (an unknown key) once."""
    values = checked_values(spec)
    bad: list[tuple[Any, str]] = []
    for value in values:
        data = copy.deepcopy(base)
        try:
            set_key(data, key, value)
        except ConfigError as error:  # the path itself is wrong, whatever the value
            return ["; ".join(issue.message for issue in error.issues)]
        issues = _config_issues(data, dim, data_path, data_kind)
        if any(issue["message"].startswith("unknown key") for issue in issues):
            return ["; ".join(issue["message"] for issue in issues)]
        if issues:
            bad.append((value, f"{show(value)} is not valid: {_explain(key, issues)}{_hint(value)}"))
    if spec["type"] == "categorical" or not bad:
        return [message for _, message in bad]
    bad.sort(key=lambda item: item[0])
    message, more = bad[0][1], [value for value, _ in bad[1:]]
    if more:
        listed = ", ".join(show(value) for value in more[:5]) + (", …" if len(more) > 5 else "")
        message += f" (nor {'is' if len(more) == 1 else 'are'} {len(more)} more of the {len(values)} values " \
                   f"checked: {listed})"
    return [message]


def _config_issues(data: dict, dim: Optional[int], data_path: Optional[str],
                   data_kind: Optional[str]) -> list[dict[str, str]]:
    try:
        parsed = resolve_config(config=data, data_path=data_path, data_kind=data_kind)
        if dim is not None:
            check_dimension(parsed, dim)
    except ConfigRejected as error:
        return error.errors
    except ConfigError as error:
        return error.as_list()
    return []


def _explain(key: str, issues: list[dict[str, str]]) -> str:
    """The trainer's messages; an issue elsewhere in the config is prefixed with its path, and
    the trainer's "(got …)" dropped where the value is already named."""
    parts = []
    for issue in issues:
        where = issue["path"]
        if where == key or where.startswith(f"{key}."):
            parts.append(re.sub(r" \(got .*\)$", "", issue["message"]))
        else:
            parts.append(f"{where}: {issue['message']}" if where else issue["message"])
    return "; ".join(parts)


def _hint(value: Any) -> str:
    if isinstance(value, str) and LATTICE_TEXT.fullmatch(value):
        sides = ", ".join(re.findall(r"\d+", value))
        return f"; write a lattice as a list, e.g. [{sides}]"
    return ""
