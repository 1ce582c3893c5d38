"""Writes with side effects for runs: queue, cancel. Celery is told only after commit."""

from __future__ import annotations

import logging
import uuid
from typing import Optional

from django.db import transaction
from django.utils import timezone

from webapp.configs.actions import resolve_config
from webapp.configs.models import Config
from webapp.datasets.models import Dataset

from . import live
from .models import Run

TASK_NAME = "worker.tasks.run_training"
log = logging.getLogger(__name__)


class RunFinished(Exception):
    """Cancel asked of a run that has already ended (the API answers 409)."""


def send_run_task(run_id: int, queue: str, task_id: str) -> None:
    """Enqueue by name: the web process never imports the worker's tasks (or torch)."""
    from worker.celery import app

    app.send_task(TASK_NAME, args=[run_id], queue=queue, task_id=task_id)


def queue_run(
    user, name: str, dataset: Dataset, config_yaml: Optional[str] = None, config: Optional[dict] = None,
    queue: str = Run.Queue.CPU, *, tags: Optional[list[str]] = None, notes: str = "",
    source_config: Optional[Config] = None,
) -> Run:
    """Validate the config against the dataset and queue a run; ConfigRejected if invalid.

    ``data.path`` in the stored snapshot is the dataset's storage name (relative to
    MEDIA_ROOT): the worker resolves it on its own machine.
    """
    if queue not in Run.Queue.values:
        raise ValueError(f"queue must be one of {Run.Queue.values}")
    parsed = resolve_config(config_yaml, config, data_path=dataset.file.name, data_kind=dataset.kind)
    snapshot = parsed.to_dict()
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        run = Run.objects.create(
            name=name or parsed.name or f"{dataset.name} {timezone.now():%Y-%m-%d %H:%M}",
            owner=user, dataset=dataset, source_config=source_config, config=snapshot,
            config_yaml=parsed.to_yaml(), queue=queue, task_id=task_id, notes=notes,
            seed=parsed.seed, dataset_sha256=dataset.sha256,
            teachers=[teacher.model_dump(mode="json") for teacher in parsed.teachers],
        )
        if tags:
            run.set_tags(tags)
        transaction.on_commit(lambda: _enqueue(run.pk, run.queue, task_id))
    if not transaction.get_connection().in_atomic_block:
        run.refresh_from_db()  # the enqueue has run: a broker failure shows in the status
    return run


def _enqueue(run_id: int, queue: str, task_id: str) -> None:
    try:
        send_run_task(run_id, queue, task_id)
    except Exception as error:  # broker down: say so on the run instead of leaving it queued forever
        log.exception("could not queue run %s", run_id)
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.FAILED, finished_at=timezone.now(),
            error=f"could not reach the task queue: {type(error).__name__}: {error}"[:2000],
        )


def cancel_run(run: Run) -> Run:
    """Ask a run to stop. A queued run is cancelled at once; a running one sees the flag in
    ``should_stop()``, saves a checkpoint and ends ``cancelled``. RunFinished if it ended.

    Each step is a conditional UPDATE, so a worker starting or finishing the run at the same
    moment cannot be overwritten.
    """
    now = timezone.now()
    if Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, cancel_requested=True, finished_at=now
    ):
        run.refresh_from_db()
        message = run.status_message()
        transaction.on_commit(lambda: live.send_to_run(run.pk, message))
        return run
    if Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(cancel_requested=True):
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise RunFinished(f"run #{run.pk} has already {run.status}; there is nothing to cancel")
