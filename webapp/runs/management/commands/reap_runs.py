"""End runs whose worker vanished; re-queue those that can resume; send again the message of
runs queued too long (a Redis restart may have lost it). See webapp/runs/reliability.py.

Every worker already does this every CUBELAB_REAPER_INTERVAL_S, and `runplatform` runs
`reap_runs --loop` beside its worker; the command is also for an operator (or a cron job)
when no worker is running, e.g. after a whole machine was lost. With --loop a failed round
(database restarting) is reported and retried, not fatal.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from webapp.runs.reliability import reap


class Command(BaseCommand):
    help = ("Mark running runs with a stale heartbeat interrupted and re-queue those with a checkpoint; "
            "re-send the message of runs queued longer than CUBELAB_REQUEUE_QUEUED_AFTER_S.")

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=None,
                            help="Heartbeat age in seconds (default CUBELAB_HEARTBEAT_TIMEOUT_S).")
        parser.add_argument("--loop", type=float, default=0, metavar="SECONDS",
                            help="Repeat every SECONDS until interrupted (default: once).")

    def handle(self, *args, timeout, loop, **options):
        while True:
            try:
                for reaped in reap(timeout_s=timeout):
                    self.stdout.write(f"run {reaped.run_id}: {reaped.outcome} — {reaped.detail}")
                    self.stdout.flush()
            except Exception as error:
                if not loop:
                    raise
                self.stderr.write(f"reaping failed ({type(error).__name__}: {error}); retrying in {loop:g} s")
            if not loop:
                return
            close_old_connections()  # a long-lived loop keeps no stale connection
            time.sleep(loop)
