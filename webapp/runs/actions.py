"""Writes with side effects for runs: queue, cancel, re-run, baseline, delete. Celery is told,
and files are removed, only after commit."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from typing import Optional

from django.conf import settings

from django.db import transaction
from django.utils import timezone

from webapp.configs.actions import ConfigRejected, resolve_config
from webapp.configs.models import Config
from webapp.datasets.models import Dataset
from webapp.teams.models import Team

from . import live
from .models import Run
from .preflight import PreflightRejected, check_submit

TASK_NAME = "worker.tasks.run_training"
log = logging.getLogger(__name__)


class RunFinished(Exception):
    """Cancel asked of a run that has already ended (the API answers 409)."""


class RunNotFinished(Exception):
    """Delete asked of a run that is queued or running: cancel it first (the API answers 409)."""


class WrongTeam(ValueError):
    """The run's team is not its dataset's team: members would see a run of data they cannot."""


def send_run_task(run_id: int, queue: str, task_id: str, priority: int = 5) -> None:
    """Enqueue by name: the web process never imports the worker's tasks (or torch).

    Celery's Redis transport serves priority 0 first; a run's priority counts the other way
    (9 is the most urgent), so it is flipped here, in one place."""
    from worker.celery import app

    app.send_task(TASK_NAME, args=[run_id], queue=queue, task_id=task_id, priority=celery_priority(priority))


def celery_priority(run_priority: int) -> int:
    return 9 - max(0, min(9, run_priority))


def queue_run(
    user, name: str, dataset: Dataset, config_yaml: Optional[str] = None, config: Optional[dict] = None,
    queue: str = Run.Queue.CPU, *, tags: Optional[list[str]] = None, notes: str = "",
    source_config: Optional[Config] = None, team: Optional[Team] = None, source_run: Optional[Run] = None,
    priority: int = 5,
) -> Run:
    """Validate the config against the dataset and queue a run; ConfigRejected if invalid.

    ``data.path`` in the stored snapshot is the dataset's storage name (relative to
    MEDIA_ROOT): the worker resolves it on its own machine. The run belongs to ``team``,
    by default the dataset's team; WrongTeam when they differ.
    """
    if queue not in Run.Queue.values:
        raise ValueError(f"queue must be one of {Run.Queue.values}")
    if not 0 <= priority <= 9:
        raise ValueError("priority must be between 0 and 9")
    if team is not None and dataset.team_id is not None and team.pk != dataset.team_id:
        raise WrongTeam(f"dataset #{dataset.pk} belongs to team `{dataset.team}`, not `{team}`")
    parsed = resolve_config(config_yaml, config, data_path=dataset.file.name, data_kind=dataset.kind)
    try:  # teachers loadable offline, the cube within the queue's device memory (issue 6)
        check_submit(parsed, queue, rows=dataset.rows)
    except PreflightRejected as error:
        raise ConfigRejected(error.errors) from None
    snapshot = parsed.to_dict()
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        run = Run.objects.create(
            name=name or parsed.name or f"{dataset.name} {timezone.now():%Y-%m-%d %H:%M}",
            owner=user, team=team or dataset.team, dataset=dataset, source_config=source_config,
            source_run=source_run, config=snapshot,
            config_yaml=parsed.to_yaml(), queue=queue, priority=priority, task_id=task_id, notes=notes,
            seed=parsed.seed, dataset_sha256=dataset.sha256,
            teachers=[teacher.model_dump(mode="json") for teacher in parsed.teachers],
        )
        if tags:
            run.set_tags(tags)
        transaction.on_commit(lambda: _enqueue(run.pk, run.queue, task_id, run.priority))
    if not transaction.get_connection().in_atomic_block:
        run.refresh_from_db()  # the enqueue has run: a broker failure shows in the status
    return run


def _enqueue(run_id: int, queue: str, task_id: str, priority: int = 5) -> None:
    try:
        send_run_task(run_id, queue, task_id, priority)
    except Exception as error:  # broker down: say so on the run instead of leaving it queued forever
        log.exception("could not queue run %s", run_id)
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.FAILED, finished_at=timezone.now(),
            error=f"could not reach the task queue: {type(error).__name__}: {error}"[:2000],
        )


def cancel_run(run: Run, reason: str = "cancelled on request") -> Run:
    """Ask a run to stop. A queued run is cancelled at once; a running one sees the flag in
    ``should_stop()``, saves a checkpoint and ends ``cancelled``. RunFinished if it ended.

    Each step is a conditional UPDATE, so a worker starting or finishing the run at the same
    moment cannot be overwritten.
    """
    now = timezone.now()
    if Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, cancel_requested=True, finished_at=now, end_reason=reason[:200]
    ):
        run.refresh_from_db()
        message = run.status_message()
        transaction.on_commit(lambda: live.send_to_run(run.pk, message))
        return run
    if Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, cancel_requested=False).update(
            cancel_requested=True, end_reason=reason[:200]):
        run.refresh_from_db()
        return run
    if Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).exists():  # asked before: the first reason stays
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise RunFinished(f"run #{run.pk} has already {run.status}; there is nothing to cancel")


def rerun_run(user, run: Run, queue: Optional[str] = None) -> Run:
    """Queue the same config on the same dataset again (on ``queue``, default the run's own);
    the new run records ``run`` as its source and keeps its tags."""
    return queue_run(
        user, f"{run.name} (re-run)"[:200], run.dataset, config_yaml=run.config_yaml, queue=queue or run.queue,
        priority=run.priority, tags=run.tag_names, source_config=run.source_config, team=run.team, source_run=run,
    )


def set_baseline(run: Run, on: bool = True) -> Run:
    """Make ``run`` its team's baseline (the previous one stops being it), or clear it."""
    with transaction.atomic():
        if on:
            Run.objects.filter(team_id=run.team_id, is_baseline=True).exclude(pk=run.pk).update(is_baseline=False)
        Run.objects.filter(pk=run.pk).update(is_baseline=on)
    run.is_baseline = on
    return run


def run_files(run: Run) -> list[Path]:
    """Everything the run wrote to storage: its output folder and each checkpoint, kept
    only when inside CHECKPOINT_DIR (a stored path can never point a delete elsewhere)."""
    root = Path(settings.CHECKPOINT_DIR).resolve()
    paths = [run.out_dir] + [checkpoint.absolute_path for checkpoint in run.checkpoints.all()]
    return [path for path in (p.resolve() for p in paths) if path.is_relative_to(root) and path != root]


def delete_run(run: Run) -> None:
    """Delete a finished run, its metrics, logs, checkpoints and files; RunNotFinished while it
    is queued or running (cancel first). The files go once the delete has committed."""
    files = run_files(run)
    with transaction.atomic():
        deleted, _ = Run.objects.filter(pk=run.pk, status__in=Run.FINISHED).delete()
        if not deleted:
            run.refresh_from_db()
            raise RunNotFinished(f"run #{run.pk} is {run.status}; cancel it before deleting it")
        transaction.on_commit(lambda: _remove(files))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        except OSError:
            log.exception("could not remove %s", path)
