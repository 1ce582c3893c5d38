"""Ask for a cube view or a projection: served from the cache, or queued for a worker.

The computation loads a checkpoint and runs the cube, so it never happens in the web
process: ``request_inspection`` finds or creates the cache row and, for a new (or failed
and retried, or long-pending) row, sends ``worker.inspect_tasks.compute_inspection`` to the
run's queue once the row is committed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.runs.models import Checkpoint, Run

from .models import Inspection

log = logging.getLogger(__name__)

TASK_NAME = "worker.inspect_tasks.compute_inspection"
RESEND_AFTER = timedelta(minutes=10)  # a pending row this old lost its message: send it again


class NoCheckpoint(Exception):
    """The run has saved no checkpoint yet (the API answers 409)."""


def latest_checkpoint(run: Run) -> Checkpoint:
    checkpoint = run.checkpoints.order_by("-step", "-id").first()
    if checkpoint is None:
        raise NoCheckpoint(f"run #{run.pk} has no checkpoint yet")
    return checkpoint


def request_inspection(run: Run, kind: str, params: dict, retry: bool = False) -> Inspection:
    checkpoint = latest_checkpoint(run)
    key = Inspection.key_for(checkpoint.pk, checkpoint.path, kind, params)
    inspection = Inspection.objects.filter(key=key).first()
    if inspection is None:
        try:
            with transaction.atomic():
                inspection = Inspection.objects.create(run=run, checkpoint=checkpoint, kind=kind, params=params, key=key)
        except IntegrityError:  # another request created it a moment ago: share its computation
            return Inspection.objects.get(key=key)
        transaction.on_commit(lambda: send_inspection_task(inspection.pk, run.queue))
        return inspection
    stale = inspection.status == Inspection.Status.PENDING and timezone.now() - inspection.requested_at > RESEND_AFTER
    if stale or (retry and inspection.status == Inspection.Status.FAILED):
        Inspection.objects.filter(pk=inspection.pk).update(status=Inspection.Status.PENDING, error="",
                                                           requested_at=timezone.now())
        inspection.refresh_from_db()
        transaction.on_commit(lambda: send_inspection_task(inspection.pk, run.queue))
    return inspection


def send_inspection_task(inspection_id: int, queue: str) -> None:
    """Enqueue by name (the web process never imports torch); a broker failure fails the row."""
    try:
        from worker.celery import app

        app.send_task(TASK_NAME, args=[inspection_id], queue=queue)
    except Exception as error:
        log.exception("could not queue inspection %s", inspection_id)
        Inspection.objects.filter(pk=inspection_id, status=Inspection.Status.PENDING).update(
            status=Inspection.Status.FAILED, finished_at=timezone.now(),
            error=f"could not reach the task queue: {type(error).__name__}: {error}"[:2000])
