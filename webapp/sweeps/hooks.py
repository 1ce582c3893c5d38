"""The two calls the worker makes (worker/bridge.py at each evaluation, worker/tasks.py when a
run's task ends). Never raise: a sweep's bookkeeping must not fail a training run."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def on_eval(run_id: int, step: int, metrics: dict) -> bool:
    """True when the sweep's pruner stopped this run (its cancel flag is now set)."""
    try:
        from .actions import trial_evaluated

        return trial_evaluated(run_id, step, metrics)
    except Exception:
        log.exception("sweep pruning check failed for run %s", run_id)
        return False


def on_run_end(run_id: int) -> None:
    """Advance the run's sweep, if it is a trial: queue the next trials or end the sweep."""
    try:
        from .actions import run_ended

        run_ended(run_id)
    except Exception:
        log.exception("could not advance the sweep of run %s", run_id)
