"""The cube view's and the projector's computation: ``compute_inspection(inspection_id)``.

Takes an id, re-fetches the cache row, delegates to ``trainer.inspect`` with the run's
config pointing at the dataset on this machine, and records the result or the failure.
A row that is no longer pending (a second delivery) is left alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from webapp.cubeview.models import Inspection

log = logging.getLogger(__name__)


@shared_task(name="worker.inspect_tasks.compute_inspection", ignore_result=True)
def compute_inspection(inspection_id: int) -> str | None:
    close_old_connections()
    inspection = Inspection.objects.select_related("run", "run__dataset", "checkpoint").filter(pk=inspection_id).first()
    if inspection is None or inspection.status != Inspection.Status.PENDING:
        return None
    try:
        result = _compute(inspection)
    except Exception as error:  # any failure is shown on the page, readably
        log.exception("inspection %s failed", inspection_id)
        from worker.tasks import readable_error

        Inspection.objects.filter(pk=inspection_id).update(status=Inspection.Status.FAILED, error=readable_error(error),
                                                           finished_at=timezone.now())
        return Inspection.Status.FAILED
    Inspection.objects.filter(pk=inspection_id).update(status=Inspection.Status.READY, result=result, error="",
                                                       finished_at=timezone.now())
    close_old_connections()
    return Inspection.Status.READY


def _compute(inspection: Inspection) -> dict:
    from trainer.inspect import cube_trace, projector_points
    from worker.tasks import build_trainer_config

    config = build_trainer_config(inspection.run)
    checkpoint = Path(settings.CHECKPOINT_DIR) / inspection.checkpoint.path
    params, cache_dir = inspection.params, Path(settings.CACHE_DIR)
    if inspection.kind == Inspection.Kind.CUBE:
        return cube_trace(checkpoint, [params["example"]], channel=params.get("channel"),
                          max_cells=params["max_cells"], config=config, cache_dir=cache_dir)
    return projector_points(checkpoint, method=params["method"], max_points=params["max_points"],
                            components=params["components"], config=config, cache_dir=cache_dir)
