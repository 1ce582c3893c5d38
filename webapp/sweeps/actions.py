"""Writes with side effects for sweeps: create, advance (queue trials), prune, stop.

``advance_sweep`` is idempotent and is called whenever something may have changed: at
creation, when a trial's run ends (worker/tasks.py calls ``run_ended``), when a sweep is
stopped and when its page asks for it. It syncs each trial's state from its run, queues new
trials up to the parallelism limit until the budget is spent, and ends the sweep once no
trial is active. It holds the sweep's row lock (``select_for_update``; SQLite's IMMEDIATE
transactions serialise writers anyway), so two workers ending trials at once cannot both
spend the same slot. A trial whose combination of values the trainer refuses (each value
alone passed ``validate_space``) fails on its own with the reason, and the sweep goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from django.db import transaction
from django.utils import timezone

from trainer.config import ConfigError
from webapp.configs.actions import ConfigRejected, resolve_config
from webapp.datasets.models import Dataset
from webapp.runs.actions import RunFinished, cancel_run, queue_run
from webapp.runs.models import LogEntry, MetricPoint, Run
from webapp.runs.preflight import PreflightRejected, check_submit
from webapp.teams.models import Team

from . import optimiser
from .models import REASON_LENGTH, Sweep, Trial
from .optimiser import PastTrial, SpaceError
from .space import describe

log = logging.getLogger(__name__)
# A space where most combinations are invalid would otherwise spend its whole budget on
# failed trials in one go: stop it and say why.
MAX_QUEUE_FAILURES_IN_A_ROW = 10
INVALID = "invalid config"  # how the reason of a trial that could not be queued starts


def create_sweep(
    user, *, name: str, dataset: Dataset, base_config_yaml: str, search_space: Any, method: str = "tpe",
    metric: str = "val/qa_cosine", direction: str = "maximize", budget: int = 10, parallelism: int = 1,
    queue: str = Run.Queue.CPU, team: Optional[Team] = None, pruning: bool = True,
    pruner_startup_trials: int = 5, pruner_warmup_steps: int = 0, seed: int = 0,
) -> Sweep:
    """Validate everything (SpaceError with [{path, message}]), save the sweep and queue its
    first trials."""
    errors = []
    if method not in Sweep.Method.values:
        errors.append({"path": "method", "message": f"must be one of {', '.join(Sweep.Method.values)}"})
    if direction not in Sweep.Direction.values:
        errors.append({"path": "direction", "message": "must be maximize or minimize"})
    if queue not in Run.Queue.values:
        errors.append({"path": "queue", "message": f"must be one of {', '.join(Run.Queue.values)}"})
    if budget < 1 or parallelism < 1:
        errors.append({"path": "budget" if budget < 1 else "parallelism", "message": "must be at least 1"})
    if not metric.strip():
        errors.append({"path": "metric", "message": "name the metric to optimise, e.g. val/qa_cosine"})
    if team is not None and dataset.team_id is not None and team.pk != dataset.team_id:
        errors.append({"path": "team", "message": f"dataset #{dataset.pk} belongs to team `{dataset.team}`"})
    if errors:
        raise SpaceError(errors)
    space = optimiser.parse_space(search_space)
    optimiser.validate_space(base_config_yaml, space, data_path=dataset.file.name, data_kind=dataset.kind)
    optimiser.check_method(method, space)
    text = search_space if isinstance(search_space, str) else _dump(search_space)
    sweep = Sweep.objects.create(
        name=name or f"sweep of {dataset.name}", owner=user, team=team or dataset.team, dataset=dataset,
        base_config_yaml=base_config_yaml, search_space_yaml=text, search_space=space, method=method,
        metric=metric.strip(), direction=direction, budget=budget, parallelism=parallelism, queue=queue,
        pruning=pruning, pruner_startup_trials=pruner_startup_trials, pruner_warmup_steps=pruner_warmup_steps,
        seed=seed,
    )
    advance_sweep(sweep.pk)
    sweep.refresh_from_db()
    return sweep


def _dump(space: Any) -> str:
    import yaml

    return yaml.safe_dump(space, sort_keys=False)


# --- reading trials for Optuna ------------------------------------------------------------------

def past_trials(sweep: Sweep, with_intermediate: bool = True) -> list[PastTrial]:
    trials = list(sweep.trials.all())
    curves: dict[int, dict[int, float]] = {}
    if with_intermediate:
        run_ids = [trial.run_id for trial in trials if trial.run_id]
        for run_id, step, value in MetricPoint.objects.filter(run_id__in=run_ids, key=sweep.metric) \
                .values_list("run_id", "step", "value"):
            curves.setdefault(run_id, {})[step] = value
    return [PastTrial(number=trial.number, params=trial.params, state=trial.state, value=trial.value,
                      intermediate=curves.get(trial.run_id, {}), system_attrs=trial.system_attrs)
            for trial in trials]


def trial_state(trial: Trial, run: Optional[Run], metric: str) -> tuple[str, Optional[float], str]:
    """(state, value, reason) of a trial from its run."""
    if run is None:
        return Trial.State.FAIL, None, trial.reason or "deleted"
    if run.status in (Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.INTERRUPTED):
        return Trial.State.RUNNING, None, trial.reason  # an interrupted run is re-queued by the reaper
    if trial.reason == "pruned":
        return Trial.State.PRUNED, None, "pruned"
    value = (run.summary or {}).get(metric)
    if run.status == Run.Status.SUCCEEDED and isinstance(value, (int, float)):
        return Trial.State.COMPLETE, float(value), ""
    if run.status == Run.Status.SUCCEEDED:
        return Trial.State.FAIL, None, "no metric"
    return Trial.State.FAIL, None, trial.reason or run.status


# --- scheduling --------------------------------------------------------------------------------

def advance_sweep(sweep_id: int) -> Optional[Sweep]:
    """Sync trial states, queue trials up to the limits, end the sweep when all is done."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().filter(pk=sweep_id).first()
        if sweep is None or sweep.status not in Sweep.ACTIVE:
            return sweep
        for trial in sweep.trials.select_related("run").filter(state=Trial.State.RUNNING):
            state, value, reason = trial_state(trial, trial.run, sweep.metric)
            if (state, value, reason) != (trial.state, trial.value, trial.reason):
                trial.state, trial.value, trial.reason = state, value, reason
                trial.save(update_fields=["state", "value", "reason"])
        total = sweep.trials.count()
        active = sweep.trials.filter(state=Trial.State.RUNNING).count()
        past = past_trials(sweep, with_intermediate=sweep.method == Sweep.Method.TPE)
        exhausted = sweep.method == Sweep.Method.GRID and optimiser.grid_exhausted(sweep.search_space, past)
        failed_in_a_row = _queue_failures_in_a_row(sweep)
        while sweep.status == Sweep.Status.RUNNING and total < sweep.budget and active < sweep.parallelism \
                and not exhausted:
            try:
                with transaction.atomic():  # a trial that breaks half-way leaves nothing behind
                    trial = _queue_trial(sweep, total, past)
            except Exception as error:  # e.g. a teacher, the dataset or the team changed: say so, queue no more
                log.exception("sweep %s: trial %s could not be queued", sweep.pk, total)
                _stop_with_error(sweep, f"trial {total} could not be queued: {error}")
                break
            total += 1
            if trial.state == Trial.State.FAIL:
                failed_in_a_row += 1
                if failed_in_a_row >= MAX_QUEUE_FAILURES_IN_A_ROW:
                    _stop_with_error(sweep, f"{failed_in_a_row} trials in a row had an invalid config; the last: "
                                            f"{trial.reason}")
                    break
            else:
                failed_in_a_row, active = 0, active + 1
            past = past_trials(sweep, with_intermediate=sweep.method == Sweep.Method.TPE)
            exhausted = sweep.method == Sweep.Method.GRID and optimiser.grid_exhausted(sweep.search_space, past)
        if active == 0:
            sweep.status = Sweep.Status.FINISHED if sweep.status == Sweep.Status.RUNNING else Sweep.Status.STOPPED
            sweep.finished_at = timezone.now()
            sweep.save(update_fields=["status", "finished_at"])
    return sweep


def _queue_trial(sweep: Sweep, number: int, past: list[PastTrial]) -> Trial:
    """Ask Optuna for the next params and queue their run; a combination of values that the
    trainer (or the run's pre-flight) refuses becomes a failed trial that says why, and the
    sweep goes on."""
    params, system_attrs = optimiser.suggest(sweep.method, sweep.search_space, sweep.direction, sweep.seed, past)
    label = ", ".join(f"{key.split('.')[-1]}={describe(value)}" for key, value in params.items())
    try:
        config = optimiser.apply_params(sweep.base_config_yaml, params)
        run = queue_run(
            sweep.owner, f"{sweep.name} #{number} ({label})"[:200], sweep.dataset, config=config,
            queue=sweep.queue, tags=[sweep.tag], team=sweep.team,
            notes=f"Trial {number} of sweep #{sweep.pk}: {label}",
        )
    except (ConfigError, ConfigRejected) as error:
        refusal = _base_refusal(sweep)
        if refusal:  # not this combination: the base config no longer queues (e.g. a teacher went away)
            raise SweepBroken(refusal) from None
        reason = f"{INVALID} ({label}): {_issues(error)}"
        log.info("sweep %s: trial %s not queued: %s", sweep.pk, number, reason)
        return Trial.objects.create(sweep=sweep, number=number, params=params, system_attrs=system_attrs,
                                    state=Trial.State.FAIL, reason=reason[:REASON_LENGTH])
    return Trial.objects.create(sweep=sweep, number=number, run=run, params=params, system_attrs=system_attrs)


class SweepBroken(Exception):
    """No trial of this sweep can be queued, whatever its params."""


def _base_refusal(sweep: Sweep) -> str:
    """Why the base config alone would not queue as a run (queue_run's checks), or ""."""
    try:
        parsed = resolve_config(sweep.base_config_yaml, data_path=sweep.dataset.file.name,
                                data_kind=sweep.dataset.kind)
        check_submit(parsed, sweep.queue, rows=sweep.dataset.rows)
    except (ConfigRejected, PreflightRejected) as error:
        return _issues(error)
    return ""


def _issues(error: ConfigError | ConfigRejected | PreflightRejected) -> str:
    issues = error.as_list() if isinstance(error, ConfigError) else error.errors
    return "; ".join(f"{issue['path']}: {issue['message']}" if issue["path"] else issue["message"]
                     for issue in issues)


def _queue_failures_in_a_row(sweep: Sweep) -> int:
    """How many of the latest trials failed before a run was queued."""
    count = 0
    latest = sweep.trials.order_by("-number").values_list("state", "reason")[:MAX_QUEUE_FAILURES_IN_A_ROW]
    for state, reason in latest:
        if state != Trial.State.FAIL or not reason.startswith(INVALID):
            break
        count += 1
    return count


def _stop_with_error(sweep: Sweep, error: str) -> None:
    sweep.error = error[:2000]
    sweep.status = Sweep.Status.STOPPING
    sweep.save(update_fields=["error", "status"])


# --- hooks the worker calls ---------------------------------------------------------------------

def trial_evaluated(run_id: int, step: int, metrics: dict[str, float]) -> bool:
    """Called by the worker's bridge at each evaluation: hand the metric's intermediate value to
    the median pruner; True (and the run's cancel flag set, the trial marked `pruned`) when it
    says prune. A run that is no sweep's trial costs one indexed query."""
    trial = Trial.objects.select_related("sweep").filter(run_id=run_id, state=Trial.State.RUNNING).first()
    if trial is None or not trial.sweep.pruning or trial.sweep.metric not in metrics:
        return False
    sweep = trial.sweep
    past = past_trials(sweep)
    current = next(t for t in past if t.number == trial.number)
    current.intermediate = {**(current.intermediate or {}), step: float(metrics[sweep.metric])}
    current.state = "running"
    if not optimiser.should_prune(sweep.search_space, sweep.direction, past, current,
                                  n_startup_trials=sweep.pruner_startup_trials,
                                  n_warmup_steps=sweep.pruner_warmup_steps):
        return False
    with transaction.atomic():
        if not Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(cancel_requested=True,
                                                                               end_reason="pruned"):
            return False
        Trial.objects.filter(pk=trial.pk).update(reason="pruned")
        LogEntry.objects.create(run_id=run_id, time=time.time(), level="warning",
                                message=f"pruned by sweep #{sweep.pk} (median pruner) at step {step}: "
                                        f"{sweep.metric}={metrics[sweep.metric]:.4g}")
    return True


def run_ended(run_id: int) -> None:
    """Called when a run ends (or its task finds it no longer queued): advance its sweep."""
    sweep_id = Trial.objects.filter(run_id=run_id).values_list("sweep_id", flat=True).first()
    if sweep_id is not None:
        advance_sweep(sweep_id)


# --- stopping ----------------------------------------------------------------------------------

def stop_sweep(sweep: Sweep, mode: str = "finish") -> Sweep:
    """Queue no more trials and cancel the queued ones; ``mode="cancel"`` also asks the running
    ones to stop (they end `cancelled`), ``"finish"`` lets them finish."""
    if mode not in ("finish", "cancel"):
        raise ValueError("mode must be finish or cancel")
    Sweep.objects.filter(pk=sweep.pk, status=Sweep.Status.RUNNING).update(status=Sweep.Status.STOPPING)
    statuses = [Run.Status.QUEUED] + ([Run.Status.RUNNING, Run.Status.INTERRUPTED] if mode == "cancel" else [])
    for trial in sweep.trials.select_related("run").filter(state=Trial.State.RUNNING, run__status__in=statuses):
        try:
            cancel_run(trial.run, reason=f"stopped with sweep #{sweep.pk}")
        except RunFinished:
            continue
        if not trial.reason:
            Trial.objects.filter(pk=trial.pk).update(reason="stopped")
    advance_sweep(sweep.pk)
    sweep.refresh_from_db()
    return sweep
