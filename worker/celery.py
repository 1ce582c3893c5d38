"""The Celery app: configured from Django settings (``CELERY_*``), tasks in worker/tasks.py.

Start a worker with ``celery -A worker worker -Q cpu`` (or ``-Q gpu`` on a GPU machine).

Why each setting (all in webapp/settings.py):

* ``task_acks_late=True``: a task is acknowledged when it ends, not when it starts, so a
  worker that dies mid-run leaves the message to be delivered again instead of losing it.
* ``worker_prefetch_multiplier=1``: a worker holds only the run it is training; queued runs
  stay in Redis where any idle worker (another machine) can take them.
* ``broker_transport_options.visibility_timeout`` (default 7 days, env
  ``CELERY_VISIBILITY_TIMEOUT``): with Redis and acks_late, a message not acknowledged within
  this time is handed to another worker *while the first is still training* (celery#5935) —
  the default one hour would start every run longer than an hour twice. It is set longer than
  any run should take, on purpose: redelivery is *not* how cubelab recovers a lost run.
  Recovery is the lease (webapp/runs/reliability.py): the worker beats the run's
  ``heartbeat_at`` every ``CUBELAB_HEARTBEAT_INTERVAL_S``; every worker's reaper thread marks a
  run silent for ``CUBELAB_HEARTBEAT_TIMEOUT_S`` ``interrupted`` and re-queues it (a new
  message) to resume from its last checkpoint. Should the old message still come back after
  the visibility timeout, the claim (a conditional UPDATE on ``status='queued'``) makes it a
  no-op, and a worker that was merely slow learns from its next beat that it lost the lease
  and stops without recording anything. The same claim makes the reaper's other duty safe:
  a run still ``queued`` ``CUBELAB_REQUEUE_QUEUED_AFTER_S`` after its last message (a Redis
  that restarted without its file lost it) gets its message sent again.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

# Celery's Django fixup calls django.setup() in the worker; the web process only imports
# this module to send tasks by name (worker.tasks, which imports torch, is never loaded there).
app = Celery("cubelab", include=["worker.tasks", "worker.inspect_tasks", "worker.calibration"])
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each queue with its own exchange and routing key: declared bare, both would inherit the
# default queue's routing key and a `gpu` run would land on the `cpu` list.
app.conf.task_queues = [Queue(name, Exchange(name), routing_key=name) for name in ("cpu", "gpu")]
app.conf.worker_hijack_root_logger = False
