"""Search spaces and Optuna, with no state of its own.

The study is rebuilt in memory from the database each time it is asked something (a new
trial, a pruning verdict, the importances): every finished trial is ``add_trial``-ed back
with ``optuna.trial.create_trial`` (its params, value or intermediate values, Optuna's system
attributes such as GridSampler's ``grid_id``) and queued or running trials as ``RUNNING``.
The database stays the one source of truth: no second schema, nothing to migrate, any web or
worker process can ask. Samplers are seeded with the sweep's seed plus the number of trials
so far, so each draw is reproducible and differs from the previous one.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Optional

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from trainer.config import ConfigError, _apply_override, read_yaml
from webapp.configs.actions import ConfigRejected, resolve_config

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

TYPES = ("float", "int", "categorical")
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
MAX_GRID = 10_000


class SpaceError(ValueError):
    """The search space is invalid; ``errors`` is [{path, message}], path = the config key."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


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

        def bad(message: str) -> None:
            errors.append({"path": key, "message": message})

        if not KEY.fullmatch(key):
            bad("must be a dotted config key like `train.lr`")
            continue

        if not isinstance(spec, dict):
            bad("must be a mapping like {type: float, low: 0.0001, high: 0.01}")
            continue
        kind = spec.get("type")
        if kind not in TYPES:
            bad(f"type must be one of {', '.join(TYPES)} (got {kind!r})")
            continue
        unknown = set(spec) - {"type", "low", "high", "log", "step", "choices", "values"}
        if unknown:
            bad(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
            continue
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                bad("categorical needs a non-empty list `choices`")
                continue
            if any(not isinstance(c, (str, int, float, bool)) and c is not None for c in choices):
                bad("choices must be strings, numbers, booleans or null")
                continue
            space[key] = {"type": kind, "choices": choices}
            continue
        low, high = spec.get("low"), spec.get("high")
        number = int if kind == "int" else (int, float)
        if not isinstance(low, number) or not isinstance(high, number) or isinstance(low, bool) \
                or isinstance(high, bool):
            bad(f"{kind} needs numeric `low` and `high`" + (" (integers)" if kind == "int" else ""))
            continue
        if not all(math.isfinite(v) for v in (low, high)):
            bad("low and high must be finite numbers")
            continue
        if low > high:
            bad(f"low ({low}) is above high ({high})")
            continue
        log_scale = bool(spec.get("log", False))
        if log_scale and low <= 0:
            bad("a log scale needs low > 0")
            continue
        step = spec.get("step")
        if step is not None and (not isinstance(step, number) or isinstance(step, bool) or not math.isfinite(step)
                                 or step <= 0 or log_scale):
            bad("step must be a positive number and cannot be combined with log")
            continue
        entry = {"type": kind, "low": low if kind == "int" else float(low),
                 "high": high if kind == "int" else float(high), "log": log_scale}
        if step is not None:
            entry["step"] = step
        if spec.get("values") is not None:
            values = spec["values"]
            if not isinstance(values, list) or not values or any(
                    not isinstance(v, number) or isinstance(v, bool) or not (low <= v <= high) for v in values):
                bad("values (grid points) must be a non-empty list inside [low, high]")
                continue
            entry["values"] = values
        space[key] = entry
    if errors:
        raise SpaceError(errors)
    return space


def extremes(spec: dict[str, Any]) -> list[Any]:
    """The values that must each give a valid config: the bounds, or every choice."""
    if spec["type"] == "categorical":
        return list(spec["choices"])
    values = [spec["low"], spec["high"]] + list(spec.get("values") or [])
    return list(dict.fromkeys(values))


def validate_space(base_config_yaml: str, space: dict[str, dict[str, Any]], *, data_path: Optional[str] = None,
                   data_kind: Optional[str] = None) -> None:
    """SpaceError unless the base config is valid and every key, set to each of its bounds or
    choices, still gives a valid trainer config (the trainer's own ``parse_config``). The
    base config's own problems are reported with path `base_config.<path>`."""
    try:
        base = read_yaml(base_config_yaml)
        if not isinstance(base, dict):
            raise SpaceError([{"path": "base_config", "message": "the base config must be a YAML mapping"}])
        resolve_config(config=base, data_path=data_path, data_kind=data_kind)
    except ConfigError as error:
        raise SpaceError([{"path": "base_config", "message": e["message"]} for e in error.as_list()]) from None
    except ConfigRejected as error:
        raise SpaceError([{"path": f"base_config.{e['path']}".rstrip("."), "message": e["message"]}
                          for e in error.errors]) from None
    errors: list[dict[str, str]] = []
    for key, spec in space.items():
        for value in extremes(spec):
            data = copy.deepcopy(base)
            try:
                set_key(data, key, value)
                resolve_config(config=data, data_path=data_path, data_kind=data_kind)
            except (ConfigError, ConfigRejected) as error:
                issues = error.errors if isinstance(error, ConfigRejected) else error.as_list()
                for issue in issues:
                    where = issue["path"]
                    prefix = "" if where in ("", key) else f"{where}: "
                    errors.append({"path": key, "message": f"{key}={value!r} is invalid: {prefix}{issue['message']}"})
                break  # one report per key is enough: unknown keys fail on every value
    if errors:
        raise SpaceError(errors)


def set_key(data: dict, key: str, value: Any) -> None:
    """The trainer's dotted override (`key.path=value`) with an already parsed value."""
    _apply_override(data, f"{key}=null")  # creates the path and refuses non-mapping parents
    node = data
    for part in key.split(".")[:-1]:
        node = node[part]
    node[key.split(".")[-1]] = value


def apply_params(base_config_yaml: str, params: dict[str, Any]) -> dict:
    data = read_yaml(base_config_yaml)
    for key, value in params.items():
        set_key(data, key, value)
    return data


def distribution(spec: dict[str, Any]):
    if spec["type"] == "categorical":
        return CategoricalDistribution(spec["choices"])
    if spec["type"] == "int":
        return IntDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step") or 1)
    return FloatDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step"))


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
    sizes = [grid_values(spec) for spec in space.values()]
    if any(values is None for values in sizes):
        return None
    return math.prod(len(values) for values in sizes)


def check_method(method: str, space: dict[str, dict[str, Any]]) -> None:
    if method != "grid":
        return
    errors = [{"path": key, "message": "a grid needs `values` or `step` for a float"}
              for key, spec in space.items() if grid_values(spec) is None]
    if errors:
        raise SpaceError(errors)
    if grid_size(space) > MAX_GRID:
        raise SpaceError([{"path": "", "message": f"the grid has {grid_size(space)} points (at most {MAX_GRID})"}])


@dataclass
class PastTrial:
    """What Optuna needs of one trial, read from the database."""

    number: int
    params: dict[str, Any]
    state: str  # Trial.State value
    value: Optional[float] = None
    intermediate: Optional[dict[int, float]] = None
    system_attrs: Optional[dict[str, Any]] = None


STATES = {"running": TrialState.RUNNING, "complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
          "fail": TrialState.FAIL}


def make_sampler(method: str, space: dict[str, dict[str, Any]], seed: int):
    if method == "grid":
        return optuna.samplers.GridSampler({key: grid_values(spec) for key, spec in space.items()}, seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, len(space) + 1)))


def build_study(method: str, space: dict, direction: str, seed: int, past: list[PastTrial], *,
                pruner=None) -> optuna.Study:
    # GridSampler orders its grid by the seed (grid_id -> point): keep it fixed for a sweep.
    sampler = make_sampler(method, space, seed if method == "grid" else seed + len(past))
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner or optuna.pruners.NopPruner())
    dists = {key: distribution(spec) for key, spec in space.items()}
    for trial in past:
        params = {key: value for key, value in trial.params.items() if key in dists}
        state = STATES[trial.state]
        if state == TrialState.COMPLETE and trial.value is None:
            state = TrialState.FAIL
        try:
            study.add_trial(create_trial(
                state=state, value=trial.value if state == TrialState.COMPLETE else None,
                params=params, distributions={key: dists[key] for key in params},
                intermediate_values=dict(trial.intermediate or {}), system_attrs=dict(trial.system_attrs or {}),
            ))
        except ValueError:  # a param outside today's space (edited by hand): leave the trial out
            log.warning("trial %s left out of the study: its params do not fit the space", trial.number)
    return study


def suggest(method: str, space: dict, direction: str, seed: int, past: list[PastTrial]) -> tuple[dict, dict]:
    """The next trial's params and Optuna system attributes (ask-and-tell)."""
    study = build_study(method, space, direction, seed, past)
    trial = study.ask({key: distribution(spec) for key, spec in space.items()})
    frozen = study._storage.get_trial(trial._trial_id)
    return dict(trial.params), {key: value for key, value in frozen.system_attrs.items()
                                if isinstance(value, (str, int, float, bool, list, dict))}


def should_prune(space: dict, direction: str, past: list[PastTrial], current: PastTrial, *,
                 n_startup_trials: int, n_warmup_steps: int) -> bool:
    """Optuna's MedianPruner verdict for ``current`` given its intermediate values so far."""
    if not current.intermediate:
        return False
    pruner = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
    others = [trial for trial in past if trial.number != current.number]
    study = build_study("random", space, direction, 0, others + [current], pruner=pruner)
    frozen = study.get_trials(deepcopy=False)[-1]  # `current`, added last
    if frozen.state != TrialState.RUNNING:  # its params no longer fit the space
        return False
    return bool(pruner.prune(study, frozen))


def importances(space: dict, direction: str, past: list[PastTrial]) -> dict[str, float]:
    """``optuna.importance.get_param_importances`` over the completed trials ({} under 2)."""
    complete = [trial for trial in past if trial.state == "complete" and trial.value is not None]
    if len(complete) < 2 or len(space) < 1:
        return {}
    study = build_study("random", space, direction, 0, complete)
    try:
        return {key: float(value) for key, value in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError, ZeroDivisionError) as error:  # e.g. all values equal
        log.info("no importances: %s", error)
        return {}


def grid_exhausted(space: dict, past: list[PastTrial]) -> bool:
    size = grid_size(space)
    return size is not None and len({tuple(sorted((k, repr(v)) for k, v in t.params.items())) for t in past}) >= size


__all__ = ["SpaceError", "parse_space", "validate_space", "apply_params", "suggest", "should_prune",
           "importances", "PastTrial", "check_method", "grid_size"]
