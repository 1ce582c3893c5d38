"""Optuna, with no state of its own (search spaces and their validation: ``space.py``).

The study is rebuilt in memory from the database each time it is asked something (a new
trial, a pruning verdict, the importances): every finished trial is ``add_trial``-ed back
with ``optuna.trial.create_trial`` (its params, value or intermediate values, Optuna's system
attributes such as GridSampler's ``grid_id``) and queued or running trials as ``RUNNING``.
The database stays the one source of truth: no second schema, nothing to migrate, any web or
worker process can ask. Samplers are seeded with the sweep's seed plus the number of trials
so far, so each draw is reproducible and differs from the previous one. Optuna sees a list
choice (a lattice) as its JSON text; params come back out as config values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from .space import (SpaceError, apply_params, check_method, decode_params, encode_choice, encode_params,
                    grid_size, grid_values, parse_space, validate_space)

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)


def distribution(spec: dict[str, Any]):
    if spec["type"] == "categorical":
        return CategoricalDistribution([encode_choice(choice) for choice in spec["choices"]])
    if spec["type"] == "int":
        return IntDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step") or 1)
    return FloatDistribution(spec["low"], spec["high"], log=spec["log"], step=spec.get("step"))


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
        return optuna.samplers.GridSampler({key: [encode_choice(value) for value in grid_values(spec)]
                                            for key, spec in space.items()}, seed=seed)
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
        params = encode_params(space, {key: value for key, value in trial.params.items() if key in dists})
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
    """The next trial's params (config values: a lattice is a list) and Optuna system
    attributes (ask-and-tell)."""
    study = build_study(method, space, direction, seed, past)
    trial = study.ask({key: distribution(spec) for key, spec in space.items()})
    frozen = study._storage.get_trial(trial._trial_id)
    return decode_params(space, trial.params), {key: value for key, value in frozen.system_attrs.items()
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


# The search-space helpers are re-exported: callers ask this module everything about a sweep.
__all__ = ["SpaceError", "parse_space", "validate_space", "apply_params", "suggest", "should_prune",
           "importances", "PastTrial", "check_method", "grid_size", "grid_exhausted"]
