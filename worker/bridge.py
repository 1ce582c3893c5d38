"""The only module that knows both worlds: trainer events -> database rows + channel group.

``RunBridge`` is a trainer ``Callback``. Per-step metrics are buffered and written with one
``bulk_create(ignore_conflicts=True)`` per flush (every ``flush_interval`` seconds or
``max_points`` points, and always at eval, checkpoint and end): the unique (run, key, step)
constraint makes replays after a restart harmless. Websocket pushes are coalesced: at most
one ``step`` message per ``push_interval`` carrying every step since the previous one, so a
browser gets ≤ ~10 messages/s however fast the trainer steps; a timer sends a held message
even if the trainer goes quiet (e.g. during a long evaluation).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from django.conf import settings
from django.urls import reverse

from trainer.events import Callback, CheckpointSaved, EvalEnd, LogMessage, RunEnd, RunStart, StepEnd
from webapp.runs import live
from webapp.runs.models import Checkpoint, LogEntry, MetricPoint, Run
from webapp.runs.reliability import LeaseLost
from webapp.sweeps import hooks as sweep_hooks

log = logging.getLogger(__name__)


class RunBridge(Callback):
    def __init__(
        self,
        run_id: int,
        *,
        flush_interval: float = 0.25,
        max_points: int = 500,
        push_interval: float = 0.1,
        stop_check_interval: float = 0.5,
        send: Optional[Callable[[int, dict], Any]] = None,
        clock: Callable[[], float] = time.monotonic,
        stop_event: Optional[threading.Event] = None,
        lease_check: Optional[Callable[[], None]] = None,
    ):
        self.run_id = run_id
        self.flush_interval = flush_interval
        self.max_points = max_points
        self.push_interval = push_interval
        self.stop_check_interval = stop_check_interval
        self._send = send or live.send_to_run
        self._clock = clock
        self._points: list[MetricPoint] = []
        self._summary: dict[str, float] = {}
        self._last_step: Optional[int] = None
        self._last_flush = clock()
        # Websocket coalescing: steps since the last push, guarded by a lock because a timer
        # thread may send them.
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._last_push = 0.0
        self._timer: Optional[threading.Timer] = None
        self._last_stop_check = float("-inf")
        self._stop = False
        self._stop_event = stop_event  # set when the worker itself is shutting down
        # Raises LeaseLost when this worker no longer holds the run (worker/tasks.py LeaseGuard):
        # checked before anything is written (steps, evaluations, checkpoint rows, logs), and
        # by should_stop so the trainer stops at its next step.
        self._lease_check = lease_check or (lambda: None)
        self.flushes = 0  # database flushes done (for tests and logs)

    # --- trainer hooks ----------------------------------------------------------------------

    def on_start(self, event: RunStart) -> None:
        Run.objects.filter(pk=self.run_id).update(device=event.device[:64], total_steps=event.total_steps)
        self._summary = dict(Run.objects.filter(pk=self.run_id).values_list("summary", flat=True).first() or {})

    def on_step(self, event: StepEnd) -> None:
        self._lease_check()
        self._buffer(event.step, event.metrics, event.time)
        point = {"step": event.step, "epoch": event.epoch, "time": event.time, "metrics": dict(event.metrics)}
        with self._lock:
            self._pending.append(point)
        if len(self._points) >= self.max_points or self._clock() - self._last_flush >= self.flush_interval:
            self.flush()
        self._push_steps(force=False)

    def on_eval(self, event: EvalEnd) -> None:
        self._lease_check()
        self._buffer(event.step, event.metrics, event.time)
        self.flush()
        self._push_steps(force=True)  # keep order: the steps before this evaluation first
        self._send(self.run_id, {"type": "eval", "run": self.run_id, "time": event.time, "step": event.step,
                                 "epoch": event.epoch, "metrics": dict(event.metrics)})
        if sweep_hooks.on_eval(self.run_id, event.step, event.metrics):  # a sweep's pruner said stop
            self._stop = True

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        self._lease_check()  # a stale attempt's checkpoint must never become the one to resume from
        self.flush()
        checkpoint, _ = Checkpoint.objects.update_or_create(
            run_id=self.run_id, path=_relative_to_store(event.path),
            defaults={"step": event.step, "size_bytes": event.size_bytes, "best": event.best},
        )
        self._push_steps(force=True)
        self._send(self.run_id, {
            "type": "checkpoint", "run": self.run_id, "time": event.time, "step": event.step, "id": checkpoint.pk,
            "size_bytes": event.size_bytes, "best": event.best,
            "download_url": reverse("api:run-checkpoint-download", args=[self.run_id, checkpoint.pk]),
        })

    def on_log(self, event: LogMessage) -> None:
        self._lease_check()
        LogEntry.objects.create(run_id=self.run_id, time=event.time, level=event.level[:16], message=event.message)
        self._push_steps(force=True)
        self._send(self.run_id, {"type": "log", "run": self.run_id, "time": event.time, "level": event.level,
                                 "message": event.message})

    def on_end(self, event: RunEnd) -> None:
        self._summary.update({k: v for k, v in (event.summary or {}).items() if is_number(v)})
        self.close()

    # --- cancellation -----------------------------------------------------------------------

    def should_stop(self) -> bool:
        """True once the run's cancel flag is set (read from the database at most every
        ``stop_check_interval`` seconds), the worker is shutting down, or this attempt lost
        its lease (the trainer stops at its next step; its final checkpoint is refused)."""
        if self._stop or (self._stop_event is not None and self._stop_event.is_set()):
            return True
        if self._lease_lost():
            return True
        now = self._clock()
        if now - self._last_stop_check >= self.stop_check_interval:
            self._last_stop_check = now
            self._stop = bool(
                Run.objects.filter(pk=self.run_id).values_list("cancel_requested", flat=True).first()
            )
        return self._stop

    def _lease_lost(self) -> bool:
        try:
            self._lease_check()
        except LeaseLost:
            return True
        return False

    # --- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write buffered points (one INSERT per batch) and the run's summary and cursor."""
        self._last_flush = self._clock()
        if not self._points:
            return
        self._lease_check()
        points, self._points = self._points, []
        MetricPoint.objects.bulk_create(points, ignore_conflicts=True, batch_size=500)
        Run.objects.filter(pk=self.run_id).update(summary=dict(self._summary), last_step=self._last_step or 0)
        self.flushes += 1

    def close(self) -> None:
        """Flush everything and send any held step message; call when training ends."""
        self._lease_check()
        self.flush()
        if self._summary:
            Run.objects.filter(pk=self.run_id).update(summary=dict(self._summary))
        self._push_steps(force=True)

    def _buffer(self, step: int, metrics: dict[str, float], at: float) -> None:
        for key, value in metrics.items():
            if not is_number(value):  # NaN/inf cannot be stored or charted; the loop reports them
                continue
            self._points.append(MetricPoint(run_id=self.run_id, key=key[:100], step=step, value=value, time=at))
            self._summary[key] = value
        self._last_step = max(step, self._last_step or 0)

    def _push_steps(self, force: bool) -> None:
        with self._lock:
            if not self._pending:
                return
            wait = self.push_interval - (self._clock() - self._last_push)
            if not force and wait > 0:
                if self._timer is None:  # send what is held even if no further event comes
                    self._timer = threading.Timer(wait, self._push_steps, kwargs={"force": True})
                    self._timer.daemon = True
                    self._timer.start()
                return
            points, self._pending = self._pending, []
            self._last_push = self._clock()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            last = points[-1]
            message = {"type": "step", "run": self.run_id, "time": last["time"], "step": last["step"],
                       "epoch": last["epoch"], "metrics": last["metrics"], "points": points}
            # Sent under the lock so messages leave in order even when the timer fires.
            self._send(self.run_id, message)


def is_number(value: Any) -> bool:
    """A finite int or float (JSON and charts have no NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _relative_to_store(path: str) -> str:
    root = Path(settings.CHECKPOINT_DIR).resolve()
    resolved = Path(path).resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)

