"""Command lines of the platform's server processes (no Django imports: tests and scripts
use them before any settings are loaded).

``python -m webapp.processes worker`` (what `make worker` runs) starts one more Celery
worker: the queues in ``QUEUES``, else ``gpu,cpu`` where CUDA is usable and ``cpu``
elsewhere; the node name ``WORKER_NAME``, else ``worker-<pid>``, so several workers on one
host never collide as ``celery@host``.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Optional


def worker_command(queues: str = "cpu,gpu", concurrency: int = 1, name: str = "cubelab") -> list[str]:
    """The Celery worker command line (also used by the test fixtures).

    The solo pool runs the task in the worker's main process, so a warm shutdown (SIGTERM)
    reaches the running task: it stops at the next step, checkpoints and records the run as
    `interrupted` instead of leaving it `running`.
    """
    pool = ["--pool", "solo"] if concurrency == 1 else ["--concurrency", str(concurrency)]
    return [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", queues, *pool,
            "--loglevel", "INFO", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]


def default_queues() -> str:
    """``gpu,cpu`` where CUDA is usable (a GPU machine helps with CPU runs when idle), else
    ``cpu``: a CPU-only machine must never take runs submitted for a GPU."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "gpu,cpu" if torch.cuda.is_available() else "cpu"


def worker_command_from_env(env: Mapping[str, str], pid: Optional[int] = None) -> list[str]:
    """The worker command `make worker` runs, from ``QUEUES`` and ``WORKER_NAME``."""
    queues = env.get("QUEUES") or default_queues()
    name = env.get("WORKER_NAME") or f"worker-{pid if pid is not None else os.getpid()}"
    return worker_command(queues, name=name)


def reaper_command(interval_s: float) -> list[str]:
    """The reaper on its own (`runplatform` runs it beside the worker): a child process, so it
    sends re-queued runs through the same Redis as the rest of the platform."""
    return [sys.executable, "manage.py", "reap_runs", "--loop", f"{interval_s:g}"]


def daphne_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "webapp.asgi:application"]


if __name__ == "__main__":
    if sys.argv[1:] != ["worker"]:
        sys.exit("usage: python -m webapp.processes worker")
    command = worker_command_from_env(os.environ)
    print(f"starting: {' '.join(command)}", flush=True)
    os.execv(command[0], command)  # the same pid: the node name stays unique while it runs
