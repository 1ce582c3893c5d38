"""A run's lease, and what happens when its worker vanishes (issue 6).

The lease is three columns of ``Run``: ``status``, ``heartbeat_at`` and ``attempt``.

* Heartbeats are written and judged by one clock, the database's (``Now()``): a worker or a
  reaper whose own clock drifts can neither look silent nor see others as silent.
* ``claim_run`` turns a ``queued`` run ``running`` with one conditional UPDATE and counts the
  attempt; a second delivery of the same message (Redis ``visibility_timeout``, a re-queue
  racing an old message) finds the run not ``queued`` and does nothing.
* ``Heartbeat`` (a thread in the worker) beats ``heartbeat_at`` every
  ``CUBELAB_HEARTBEAT_INTERVAL_S`` while the run trains, conditional on its own attempt: once
  the run was reaped and re-queued, the old worker's beat matches no row, it learns that it
  lost the lease and stops without recording anything.
* ``reap_stale_runs`` (every worker runs it every ``CUBELAB_REAPER_INTERVAL_S``; also the
  ``reap_runs`` command) marks a ``running`` run whose heartbeat is older than
  ``CUBELAB_HEARTBEAT_TIMEOUT_S`` ``interrupted`` and, if it has a checkpoint and attempts
  left, re-queues it with ``resume_from`` set: the next worker continues from there.
* ``resend_lost_messages`` (the same reaper) sends the message of a run still ``queued``
  ``CUBELAB_REQUEUE_QUEUED_AFTER_S`` after its last one again: Redis restarted without its
  file loses queued messages, and the claim makes a duplicate delivery a no-op.
* A worker learns it lost the lease from its heartbeat or from ``LeaseGuard``-style checks
  before it writes (worker/tasks.py): ``LeaseLost`` stops it without recording anything.
* ``finish_run`` records the end, conditional on the attempt; a run whose cancel was
  accepted is recorded ``cancelled``, never ``succeeded``, however the two race.

Django only (no torch): the web process, the worker and the command all import it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Optional

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from . import live
from .models import Checkpoint, LogEntry, MetricPoint, Run

log = logging.getLogger(__name__)


# --- the lease ---------------------------------------------------------------------------------


class LeaseLost(Exception):
    """This worker's attempt is no longer the run's (it was reaped and re-queued, or ended)."""


def claim_run(run_id: int, **fields) -> Optional[int]:
    """Take a queued run: its new attempt number, or None when it is not ``queued``.

    ``started_at`` keeps the first attempt's time (the measured time-to-start).
    """
    now = timezone.now()  # started_at is compared with created_at, also an application time
    claimed = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, attempt=F("attempt") + 1, heartbeat_at=Now(),
        started_at=Coalesce("started_at", now), finished_at=None, **fields,
    )
    if not claimed:
        return None
    return Run.objects.filter(pk=run_id).values_list("attempt", flat=True).first()


def beat(run_id: int, attempt: int) -> bool:
    """Renew the lease; False once the run is no longer this attempt's (reaped, ended)."""
    return bool(Run.objects.filter(pk=run_id, status=Run.Status.RUNNING, attempt=attempt)
                .update(heartbeat_at=Now()))


class Heartbeat:
    """Beats a run's lease from a background thread (its own database connection).

    ``lost`` is set when a beat matches no row: the run was reaped (this worker looked dead)
    or ended elsewhere. A failing database only logs: the reaper decides, not the beater.
    """

    def __init__(self, run_id: int, attempt: int, interval: Optional[float] = None,
                 cancel_grace: Optional[float] = None):
        self.run_id, self.attempt = run_id, attempt
        self.interval = float(interval if interval is not None else settings.CUBELAB_HEARTBEAT_INTERVAL_S)
        self.cancel_grace = float(cancel_grace if cancel_grace is not None else settings.CUBELAB_CANCEL_GRACE_S)
        self._cancel_seen: Optional[float] = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-run-{run_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    if not beat(self.run_id, self.attempt):
                        log.warning("run %s attempt %s lost its lease: stopping", self.run_id, self.attempt)
                        self.lost.set()
                        return
                    if self._cancel_grace_over():
                        return
                except Exception:
                    log.exception("heartbeat of run %s failed; retrying", self.run_id)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection

    def _cancel_grace_over(self) -> bool:
        """A cancelled run gets ``cancel_grace`` seconds to checkpoint and stop by itself (the
        trainer checks at every step); one that does not (stuck in a long teacher encoding,
        say) is recorded `cancelled` here, and the guard stops it without writing more."""
        if self._cancel_seen is None:
            if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
                self._cancel_seen = time.monotonic()
            return False
        if time.monotonic() - self._cancel_seen < self.cancel_grace:
            return False
        if finish_run(self.run_id, self.attempt, Run.Status.CANCELLED) is None:
            return False  # it ended meanwhile: the next beat says so
        message = (f"cancelled: the run did not stop within the {self.cancel_grace:g} s grace period; "
                   "recorded without a final checkpoint")
        LogEntry.objects.create(run_id=self.run_id, time=time.time(), level="warning", message=message)
        run = Run.objects.get(pk=self.run_id)
        live.send_to_run(run.pk, run.status_message())
        self.lost.set()
        return True


def finish_run(run_id: int, attempt: Optional[int], status: str, error: str = "",
               summary: Optional[dict] = None, reason: str = "") -> Optional[str]:
    """Record the end of this attempt; returns the status stored, or None if the run was not
    this attempt's to end (reaped, or an operator ended it).

    ``succeeded`` is written only while no cancel was accepted; a cancel accepted before the
    end makes it ``cancelled``. A cancel arriving after the end gets RunFinished (409).
    """
    fields = {"finished_at": timezone.now(), "error": error, "heartbeat_at": None}
    if reason:  # a reason stored with the cancel request ("pruned", "cancelled by carol") wins
        fields["end_reason"] = Case(When(end_reason="", then=Value(reason[:200])), default=F("end_reason"))
    if summary:
        current = Run.objects.filter(pk=run_id).values_list("summary", flat=True).first() or {}
        fields["summary"] = {**current, **summary}
    mine = Q(pk=run_id, status=Run.Status.RUNNING) & (Q(attempt=attempt) if attempt is not None else Q())
    if status == Run.Status.SUCCEEDED:
        if Run.objects.filter(mine, cancel_requested=False).update(status=status, **fields):
            return status
        status, fields["error"] = Run.Status.CANCELLED, ""
    return status if Run.objects.filter(mine).update(status=status, **fields) else None


# --- resuming ----------------------------------------------------------------------------------


def latest_checkpoint(run: Run) -> Optional[Checkpoint]:
    """The checkpoint with the highest step (its row is written after its files are)."""
    return run.checkpoints.order_by("-step", "-id").first()


def prepare_resume(run: Run) -> Optional[tuple[str, int]]:
    """(checkpoint path, step) the run resumes from, after dropping the metric points the
    lost attempt wrote past that step: the resumed attempt replays those steps and writes
    them again, so the history has each step exactly once and matches the checkpoint."""
    if not run.resume_from:
        return None
    checkpoint = run.checkpoints.filter(path=run.resume_from).first()
    if checkpoint is None:  # unknown step: keep every point (replays are ignored, never doubled)
        return str(run.resume_from), 0
    step = checkpoint.step
    with transaction.atomic():
        MetricPoint.objects.filter(run=run, step__gt=step).delete()
        Run.objects.filter(pk=run.pk).update(last_step=step)
    return str(run.resume_from), step


# --- the reaper --------------------------------------------------------------------------------


@dataclass
class Reaped:
    run_id: int
    outcome: str  # "requeued", "interrupted", "cancelled"; "resent" or "queued" for a lost message
    detail: str


def stale_before(timeout_s: float) -> ExpressionWrapper:
    """The database's "now" minus ``timeout_s``: a heartbeat older than this is stale. Computed
    in the database, like the beats themselves, so no machine's own clock takes part."""
    return ExpressionWrapper(Now() - timedelta(seconds=timeout_s), output_field=DateTimeField())


def reap_stale_runs(timeout_s: Optional[float] = None,
                    send: Optional[Callable[[int, str, str], None]] = None) -> list[Reaped]:
    """End every ``running`` run whose heartbeat is older than ``timeout_s``; re-queue those
    that can resume. Safe to run from many workers at once (each step is a conditional UPDATE)."""
    timeout_s = float(timeout_s if timeout_s is not None else settings.CUBELAB_HEARTBEAT_TIMEOUT_S)
    now = timezone.now()  # finished_at, shown to people: the same clock as every other end
    cutoff = stale_before(timeout_s)
    stale = Run.objects.filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff),
                               status=Run.Status.RUNNING)
    reaped = []
    for run in stale:
        outcome = _reap(run, cutoff, now, timeout_s, send)
        if outcome is not None:
            reaped.append(outcome)
    return reaped


def _reap(run: Run, cutoff, now, timeout_s: float, send) -> Optional[Reaped]:
    silent = f"its worker ({run.worker_host or 'unknown'}) sent no heartbeat for over {timeout_s:g} s"
    lease = Q(pk=run.pk, status=Run.Status.RUNNING, attempt=run.attempt) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
    if run.cancel_requested:  # the user asked it to stop: it stays stopped
        if not Run.objects.filter(lease).update(status=Run.Status.CANCELLED, finished_at=now, heartbeat_at=None):
            return None
        return _announce(run, Reaped(run.pk, "cancelled", f"cancelled; {silent}"))
    error = f"interrupted: {silent}"
    if not Run.objects.filter(lease).update(status=Run.Status.INTERRUPTED, finished_at=now, error=error,
                                            heartbeat_at=None):
        return None  # it beat meanwhile, or another reaper got there first
    return requeue_interrupted(run, error, send)


# --- lost queue messages -----------------------------------------------------------------------


def requeue_queued_after_s() -> float:
    """CUBELAB_REQUEUE_QUEUED_AFTER_S (default 600; 0 turns re-sending off)."""
    configured = getattr(settings, "CUBELAB_REQUEUE_QUEUED_AFTER_S", None)
    if configured is None:
        configured = os.environ.get("CUBELAB_REQUEUE_QUEUED_AFTER_S") or 600
    return float(configured)


def resend_lost_messages(after_s: Optional[float] = None,
                         send: Optional[Callable[[int, str, str], None]] = None) -> list[Reaped]:
    """Send the message of every run still `queued` ``after_s`` seconds after its last one again.

    A Redis restarted without its append-only file has forgotten the queued messages, and
    such a run would wait forever. Re-sending is harmless when the message was merely waiting
    behind others: the first delivery claims the run, any later one finds it not `queued` and
    does nothing. So the bound is a plain age: since the run was queued, or since the last
    entry in its log (every re-queue and every re-send writes one), so each run is re-sent at
    most once per ``after_s``, however many reapers look.
    """
    after_s = requeue_queued_after_s() if after_s is None else float(after_s)
    if after_s <= 0:
        return []
    cutoff = timezone.now() - timedelta(seconds=after_s)
    waiting = (Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=cutoff)
               .exclude(log_entries__time__gt=cutoff.timestamp()).only("pk", "queue", "task_id"))
    resent = [_resend(run, after_s, send) for run in waiting]
    return [outcome for outcome in resent if outcome is not None]


def _resend(run: Run, after_s: float, send) -> Optional[Reaped]:
    task_id = str(uuid.uuid4())
    detail = (f"still queued {after_s:g} s after its last message: sent it again in case Redis lost it "
              "(a duplicate is ignored)")
    with transaction.atomic():  # one reaper wins; its log entry restarts the clock for the others
        if not Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED, task_id=run.task_id).update(task_id=task_id):
            return None
        LogEntry.objects.create(run_id=run.pk, time=time.time(), level="warning", message=detail)
    try:
        (send or _send_task)(run.pk, run.queue, task_id)
    except Exception as failure:  # broker down: the next try comes after_s later
        log.exception("could not re-send the message of run %s", run.pk)
        message = f"could not send its message again: {type(failure).__name__}: {failure}"[:2000]
        LogEntry.objects.create(run_id=run.pk, time=time.time(), level="warning", message=message)
        return Reaped(run.pk, "queued", message)
    log.warning("run %s: %s", run.pk, detail)
    return Reaped(run.pk, "resent", detail)


def reap(timeout_s: Optional[float] = None, send: Optional[Callable[[int, str, str], None]] = None) -> list[Reaped]:
    """One round of the reaper: silent runs, then queued runs whose message may be lost."""
    return reap_stale_runs(timeout_s=timeout_s, send=send) + resend_lost_messages(send=send)


def requeue_after_shutdown(run_id: int, attempt: int, error: str,
                           send: Optional[Callable[[int, str, str], None]] = None) -> Optional[str]:
    """A worker shutting down (SIGTERM: a deploy, `docker stop`) ends its run `interrupted`
    after the trainer's last checkpoint and hands it back to the queue to resume elsewhere.
    Returns the status stored (``queued`` or ``interrupted``), None if not this attempt's."""
    if finish_run(run_id, attempt, Run.Status.INTERRUPTED, error) is None:
        return None
    run = Run.objects.get(pk=run_id)
    if run.cancel_requested:
        return run.status
    requeue_interrupted(run, error, send)
    return Run.objects.filter(pk=run_id).values_list("status", flat=True).first()


def requeue_interrupted(run: Run, error: str, send: Optional[Callable[[int, str, str], None]] = None) -> Reaped:
    """An `interrupted` run goes back to its queue to resume from its latest checkpoint, if
    it has one and attempts left; otherwise it stays `interrupted` with the reason."""
    checkpoint = latest_checkpoint(run)
    max_attempts = settings.CUBELAB_MAX_ATTEMPTS
    if checkpoint is None:
        return _announce(run, Reaped(run.pk, "interrupted", f"{error}; no checkpoint to resume from"))
    if run.attempt >= max_attempts:
        Run.objects.filter(pk=run.pk, status=Run.Status.INTERRUPTED).update(
            error=f"{error}; not re-queued after {run.attempt} attempts (CUBELAB_MAX_ATTEMPTS)")
        return _announce(run, Reaped(run.pk, "interrupted", f"{error}; attempts used up"))
    task_id = str(uuid.uuid4())
    if not Run.objects.filter(pk=run.pk, status=Run.Status.INTERRUPTED, attempt=run.attempt).update(
            status=Run.Status.QUEUED, resume_from=checkpoint.path, task_id=task_id, finished_at=None,
            error=""):
        return Reaped(run.pk, "interrupted", f"{error}; changed meanwhile, not re-queued")
    detail = f"{error}; re-queued to resume from step {checkpoint.step} (attempt {run.attempt + 1})"
    try:
        (send or _send_task)(run.pk, run.queue, task_id)
    except Exception as failure:  # broker down: say so instead of leaving it queued with no message
        log.exception("could not re-queue run %s", run.pk)
        Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED, task_id=task_id).update(
            status=Run.Status.INTERRUPTED, finished_at=timezone.now(),
            error=f"{error}; could not re-queue it: {type(failure).__name__}: {failure}"[:2000])
        return _announce(run, Reaped(run.pk, "interrupted", f"{error}; re-queue failed"))
    return _announce(run, Reaped(run.pk, "requeued", detail))


def _send_task(run_id: int, queue: str, task_id: str) -> None:
    from .actions import send_run_task

    priority = Run.objects.filter(pk=run_id).values_list("priority", flat=True).first()
    send_run_task(run_id, queue, task_id, 5 if priority is None else priority)


def _announce(run: Run, reaped: Reaped) -> Reaped:
    log.warning("run %s: %s", run.pk, reaped.detail)
    LogEntry.objects.create(run_id=run.pk, time=time.time(), level="warning", message=reaped.detail)
    run.refresh_from_db()
    try:
        live.send_to_run(run.pk, run.status_message())
    except Exception:  # the page reloads the status over REST after a reconnect
        log.exception("could not announce run %s", run.pk)
    if run.is_finished:  # a sweep whose trial ended here queues its next trial
        from webapp.sweeps.hooks import on_run_end

        on_run_end(run.pk)
    return reaped


class Reaper:
    """Runs ``reap`` every ``interval`` seconds in a daemon thread (each worker
    starts one: Celery beat is not needed)."""

    def __init__(self, interval: Optional[float] = None):
        self.interval = float(interval if interval is not None else settings.CUBELAB_REAPER_INTERVAL_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cubelab-reaper", daemon=True)

    def start(self) -> "Reaper":
        if self.interval > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    reap()
                except Exception:
                    log.exception("reaping stale runs failed; retrying")
                    close_old_connections()
        finally:
            connection.close()
