"""Celery tasks: one per job kind; arguments are ids; each re-fetches, delegates, records.

``run_training(run_id)`` claims a queued run (a conditional UPDATE, so a second delivery of
the same message is a no-op), trains it with ``trainer.loop.train`` and records the end.
While it trains, a heartbeat thread renews the run's lease; a run re-queued after its worker
vanished resumes from ``run.resume_from`` (webapp/runs/reliability.py). Every worker also
runs the reaper thread that finds such runs.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
import threading
import time
import traceback
from pathlib import Path
from typing import Optional

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings
from django.db import close_old_connections

from trainer.config import Config, ConfigError, parse_config
from webapp.runs import live
from webapp.runs.models import Run
from webapp.runs.reliability import (
    Heartbeat, LeaseLost, Reaper, claim_run, finish_run, prepare_resume, requeue_after_shutdown,
)
from webapp.sweeps import hooks as sweep_hooks

from .bridge import RunBridge, is_number

log = logging.getLogger(__name__)

RECORDED_PACKAGES = ("torch", "transformers", "numpy", "pydantic", "safetensors", "Django", "celery")
END_STATUS = {"succeeded": Run.Status.SUCCEEDED, "cancelled": Run.Status.CANCELLED, "failed": Run.Status.FAILED}

# Set on a warm shutdown (SIGTERM, Ctrl-C). With the solo pool the running task sees it in
# should_stop(): the trainer checkpoints and the run is recorded `interrupted`, never left
# `running`.
worker_stopping = threading.Event()


_reaper: Optional[Reaper] = None


class AliveFile:
    """Touches ``path`` every ``interval`` seconds from a daemon thread; the container's
    health check reads its age (docker-compose.yml). `celery inspect ping` cannot answer
    while a solo-pool worker trains (the task holds the process's only consumer), so a busy
    worker looked unhealthy; this thread keeps beating beside training and stops only with
    the process."""

    def __init__(self, path: str | Path, interval: float = 15.0):
        self.path, self.interval = Path(path), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cubelab-alive-file", daemon=True)

    def start(self) -> "AliveFile":
        self.touch()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def touch(self) -> None:
        try:
            self.path.touch()
        except OSError:  # a read-only or vanished folder: the health check will say so
            log.exception("could not touch the liveness file %s", self.path)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.touch()


@worker_shutting_down.connect
def _on_worker_shutting_down(**kwargs) -> None:
    worker_stopping.set()
    if _reaper is not None:
        _reaper.stop()


@worker_ready.connect
def _on_worker_ready(**kwargs) -> None:
    """Each worker looks for runs whose worker vanished (no Celery beat needed) and, where
    CUBELAB_WORKER_ALIVE_FILE names a file (the Docker image does), beats it for the health check."""
    global _reaper
    _reaper = Reaper().start()
    alive_file = os.environ.get("CUBELAB_WORKER_ALIVE_FILE")
    if alive_file:
        AliveFile(alive_file).start()


@shared_task(name="worker.tasks.run_training", ignore_result=True)
def run_training(run_id: int) -> Optional[str]:
    close_old_connections()
    attempt = _claim(run_id)
    if attempt is None:
        log.info("run %s is no longer queued: nothing to do", run_id)
        sweep_hooks.on_run_end(run_id)  # e.g. a sweep's trial cancelled while queued
        return None
    with Heartbeat(run_id, attempt) as heartbeat:
        status = _train_claimed(run_id, attempt, heartbeat)
    sweep_hooks.on_run_end(run_id)  # a sweep queues its next trials
    close_old_connections()  # the worker lives for days: no connection outlives its task
    return status


def _train_claimed(run_id: int, attempt: int, heartbeat: Heartbeat) -> Optional[str]:
    run = Run.objects.get(pk=run_id)
    live.send_to_run(run.pk, run.status_message())
    guard = LeaseGuard(run_id, attempt, heartbeat)
    bridge = RunBridge(run.pk, stop_event=worker_stopping, lease_check=guard)
    try:
        config = build_trainer_config(run)
        record_teacher_identities(run, config)
        out_dir = attempt_dir(run, attempt)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        resume = prepare_resume(run)
        if resume is not None:
            bridge.on_log(_resume_message(resume[1], attempt))
        from trainer.loop import train

        result = train(config, out_dir, callbacks=[bridge], should_stop=bridge.should_stop,
                       resume=Path(settings.CHECKPOINT_DIR) / resume[0] if resume else None,
                       cache_dir=Path(settings.CACHE_DIR))
    except LeaseLost:
        # Reaped while this worker was unreachable: a newer attempt owns the run, its folder
        # and its history. Stop at once: no flush, no checkpoint, nothing recorded.
        log.warning("run %s attempt %s lost its lease; stopped without recording anything", run_id, attempt)
        return None
    except Exception as error:  # any failure ends the run `failed` with a readable reason
        log.exception("run %s failed", run_id)
        _safe_close(bridge)
        _finish(run_id, Run.Status.FAILED, readable_error(error), attempt=attempt)
        return Run.Status.FAILED
    if guard.lost():  # the trainer stopped because should_stop() saw the lease gone
        log.warning("run %s attempt %s lost its lease; its end is not recorded", run_id, attempt)
        return None
    _safe_close(bridge)
    status = END_STATUS.get(result.status, Run.Status.FAILED)
    error = "" if status != Run.Status.FAILED else (result.reason or "training failed")
    cancelled = Run.objects.filter(pk=run_id, cancel_requested=True).exists()
    if cancelled and status != Run.Status.FAILED:
        status, error = Run.Status.CANCELLED, ""  # a cancelled run is never recorded as succeeded
    elif worker_stopping.is_set() and status == Run.Status.CANCELLED:
        # The trainer checkpointed on the way out: hand the run back to the queue to resume.
        recorded = requeue_after_shutdown(run_id, attempt, "the worker shut down; the last checkpoint resumes the run")
        live.send_to_run(run_id, Run.objects.get(pk=run_id).status_message())
        return Run.Status.INTERRUPTED if recorded else None
    return _finish(run_id, status, error, summary=result.summary, attempt=attempt, reason=result.reason)


def attempt_dir(run: Run, attempt: int) -> Path:
    """Where this attempt's trainer writes: the run's folder for the first attempt, a folder
    of its own for each re-queued one. A worker that comes back after a freeze then writes
    (at most) into its own folder, never over the files of the attempt that replaced it."""
    return run.out_dir if attempt <= 1 else run.out_dir / f"attempt-{attempt}"


class LeaseGuard:
    """Called by the bridge before it writes anything (a step's or an evaluation's results,
    a checkpoint row, a log line) and from ``should_stop``: make sure this attempt still
    holds the run (the heartbeat thread's verdict, and at most every ``check_interval`` s a
    look at the database itself, so a worker that was frozen past the timeout notices at its
    very next step)."""

    def __init__(self, run_id: int, attempt: int, heartbeat: Heartbeat, check_interval: float = 0.5,
                 clock=time.monotonic):
        self.run_id, self.attempt, self.heartbeat = run_id, attempt, heartbeat
        self.check_interval, self._clock = check_interval, clock
        self._last_check = clock()

    def __call__(self) -> None:
        if self.lost():
            raise LeaseLost(f"run {self.run_id} attempt {self.attempt}")

    def lost(self) -> bool:
        if self.heartbeat.lost.is_set():
            return True
        now = self._clock()
        if now - self._last_check >= self.check_interval:
            self._last_check = now
            if not Run.objects.filter(pk=self.run_id, status=Run.Status.RUNNING, attempt=self.attempt).exists():
                self.heartbeat.lost.set()
        return self.heartbeat.lost.is_set()


def _resume_message(step: int, attempt: int):
    from trainer.events import LogMessage

    return LogMessage("info", f"attempt {attempt}: resuming from the checkpoint at step {step}")


def build_trainer_config(run: Run) -> Config:
    """The run's snapshot with ``data.path`` pointing at the dataset file on this machine."""
    data = dict(run.config)
    data["data"] = dict(data.get("data") or {}, path=str(Path(settings.MEDIA_ROOT) / run.dataset.file.name))
    return parse_config(data)


def record_teacher_identities(run: Run, config: Config) -> None:
    """Each teacher's identity from its files (name@revision:digest) next to its settings."""
    from trainer.teachers import teacher_identity

    teachers = []
    for teacher in config.teachers:
        entry = teacher.model_dump(mode="json")
        entry["identity"] = teacher_identity(teacher)  # a missing teacher fails the run here, readably
        teachers.append(entry)
    Run.objects.filter(pk=run.pk).update(teachers=teachers)


def readable_error(error: BaseException) -> str:
    if isinstance(error, ConfigError):
        return str(error)
    message = str(error).strip() or "(no message)"
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    origin = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(error).__name__}: {message}{origin}"[:4000]


def _claim(run_id: int) -> Optional[int]:
    """The attempt number this worker now holds, or None (not queued: a second delivery)."""
    return claim_run(run_id, worker_host=socket.gethostname()[:255],
                     package_versions=package_versions(), code_version=code_version())


def _finish(run_id: int, status: str, error: str = "", summary: Optional[dict] = None,
            attempt: Optional[int] = None, reason: str = "") -> Optional[str]:
    numbers = {k: v for k, v in (summary or {}).items() if is_number(v)}  # JSON has no NaN or inf
    # Only this attempt's running run is ended here: a concurrent operator action or a newer
    # attempt is not overwritten, and an accepted cancel turns `succeeded` into `cancelled`.
    recorded = finish_run(run_id, attempt, status, error, summary=numbers or None, reason=reason)
    run = Run.objects.get(pk=run_id)
    live.send_to_run(run_id, run.status_message())
    return recorded or run.status


def _safe_close(bridge: RunBridge) -> None:
    try:
        bridge.close()
    except LeaseLost:  # a newer attempt owns the run: its history is not ours to write
        log.warning("run %s: lease lost; the last metrics were not written", bridge.run_id)
    except Exception:
        log.exception("could not flush the last metrics of run %s", bridge.run_id)


@functools.cache
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


@functools.cache
def code_version() -> str:
    """`git describe` of the checkout the worker runs from; in a Docker image (no .git) the
    commit it was built from (``CUBELAB_CODE_VERSION``, from the GIT_SHA build argument);
    empty when neither is known."""
    fallback = os.environ.get("CUBELAB_CODE_VERSION", "").strip()[:100]
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"], cwd=settings.BASE_DIR,
            capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return fallback
    return (result.stdout.strip()[:100] or fallback) if result.returncode == 0 else fallback


