"""Start everything in the foreground: Redis (unless REDIS_URL is set), migrations, demo
data, Daphne (HTTP + websockets), the reaper and one Celery worker. Ctrl-C or SIGTERM stops
them all.

The reaper (`reap_runs --loop`, webapp/runs/reliability.py) runs even with `--no-worker` and
while every worker is gone: a worker's own reaper lives and dies with that worker, and a run
whose worker vanished must still be ended (and re-queued) within a bounded time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from webapp.processes import daphne_command, reaper_command, worker_command
from webapp.redis_server import DEFAULT_PORT, RedisServer, free_port, port_is_open, start_redis

from .load_demo import demo_login

STOP_GRACE_S = 30  # a training run gets this long to checkpoint and record `interrupted`


class Command(BaseCommand):
    help = "Run the whole platform in the foreground (web server, Redis, one worker)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Interface Daphne binds (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
        parser.add_argument("--queues", default="cpu,gpu", help="Queues the worker takes (default cpu,gpu).")
        parser.add_argument("--no-worker", action="store_true", help="Start no Celery worker.")
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo user and data.")

    def handle(self, *args, host: str, port: int, queues: str, no_worker: bool, no_demo: bool, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.redis: Optional[RedisServer] = None
        self.stopping = False
        env = dict(os.environ)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if not os.environ.get("REDIS_URL"):
                redis_port = DEFAULT_PORT if not port_is_open(DEFAULT_PORT) else free_port()
                self.redis = start_redis(Path(settings.VAR_DIR) / "redis", port=redis_port, persist=True)
                env["REDIS_URL"] = self.redis.url
                self.stdout.write(f"Redis: {self.redis.url} (data in {self.redis.directory})")
            call_command("migrate", interactive=False, verbosity=0)
            if not no_demo:
                call_command("load_demo")
            if not settings.DEBUG:
                call_command("collectstatic", interactive=False, verbosity=0)
            self._spawn("web", daphne_command(host, port), env)
            if settings.CUBELAB_REAPER_INTERVAL_S > 0:
                self._spawn("reaper", reaper_command(settings.CUBELAB_REAPER_INTERVAL_S), env)
            if not no_worker:
                self._spawn("worker", worker_command(queues), env)
            self._announce(host, port)
            self._watch()
        finally:
            self._stop_all()

    def _spawn(self, name: str, command: list[str], env: dict) -> None:
        # A new session: the terminal's Ctrl-C reaches only us, and we stop children in order.
        process = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, start_new_session=True)
        self.children.append((name, process))

    def _announce(self, host: str, port: int) -> None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        username, password = demo_login()
        self.stdout.write(self.style.SUCCESS(f"\ncubelab is running at http://{shown}:{port}/"))
        if password:
            self.stdout.write(f"sign in as `{username}` with password `{password}`")
        else:
            self.stdout.write(f"sign in as `{username}` (password from CUBELAB_DEMO_PASSWORD)")
        self.stdout.write("API docs: /api/v1/docs/ — Ctrl-C stops everything\n")

    def _watch(self) -> None:
        while not self.stopping:
            for name, process in self.children:
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping")
                    return
            time.sleep(0.5)

    def _on_signal(self, signum, frame) -> None:
        if self.stopping:  # a second Ctrl-C: no more waiting
            for _, process in self.children:
                if process.poll() is None:
                    process.kill()
        self.stopping = True

    def _stop_all(self) -> None:
        self.stopping = True
        for _, process in self.children:
            if process.poll() is None:
                process.terminate()  # Celery: warm shutdown; Daphne: close connections
        deadline = time.monotonic() + STOP_GRACE_S
        for name, process in self.children:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {STOP_GRACE_S}s; killing it")
                process.kill()
                process.wait()
        if self.redis is not None:
            self.redis.stop()
        self.stdout.write("stopped")
