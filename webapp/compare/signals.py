"""Build a run's display caches once it finishes, after the commit that finished it."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from webapp.runs.models import Run

logger = logging.getLogger(__name__)


@receiver(post_save, sender=Run, dispatch_uid="compare-build-caches")
def build_caches_when_finished(sender, instance: Run, **kwargs) -> None:
    if instance.status not in Run.FINISHED:
        return
    run_id = instance.pk
    transaction.on_commit(lambda: _build(run_id))


def _build(run_id: int) -> None:
    from .models import SeriesCache
    from .series import build_run_caches

    try:
        run = Run.objects.get(pk=run_id)
        if not SeriesCache.objects.filter(run=run, run_last_step=run.last_step).exists():
            build_run_caches(run)
    except Exception:  # a cache is an optimisation: the comparison builds it on first use instead
        logger.exception("could not build the display caches of run %s", run_id)
