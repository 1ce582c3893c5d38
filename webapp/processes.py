"""Command lines of the platform's server processes (no Django imports: tests and scripts
use them before any settings are loaded)."""

from __future__ import annotations

import sys


def worker_command(queues: str = "cpu,gpu", concurrency: int = 1, name: str = "cubelab") -> list[str]:
    """The Celery worker command line (also used by the test fixtures).

    The solo pool runs the task in the worker's main process, so a warm shutdown (SIGTERM)
    reaches the running task: it stops at the next step, checkpoints and records the run as
    `interrupted` instead of leaving it `running`.
    """
    pool = ["--pool", "solo"] if concurrency == 1 else ["--concurrency", str(concurrency)]
    return [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", queues, *pool,
            "--loglevel", "INFO", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]


def reaper_command(interval_s: float) -> list[str]:
    """The reaper on its own (`runplatform` runs it beside the worker): a child process, so it
    sends re-queued runs through the same Redis as the rest of the platform."""
    return [sys.executable, "manage.py", "reap_runs", "--loop", f"{interval_s:g}"]


def daphne_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "webapp.asgi:application"]
