"""`runplatform` bounds how long a silent run stays `running`, even with no worker alive.

A worker's reaper thread lives and dies with its worker; the platform command runs the
reaper itself, so a run whose worker vanished is still ended after the heartbeat timeout.
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ROOT, dialogue_jsonl, wait_for, stop_process
from webapp.redis_server import free_port

pytestmark = pytest.mark.slow

SILENT_RUN = """
import django, sys
django.setup()
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from webapp.datasets.actions import create_dataset
from webapp.runs.models import Run
user = get_user_model().objects.create(username="erin")
dataset = create_dataset(user, "faq", "dialogue", SimpleUploadedFile("faq.jsonl", open(sys.argv[1], "rb").read()))
long_ago = timezone.now() - timedelta(minutes=5)  # its worker was killed five minutes ago
run = Run.objects.create(name="orphan", owner=user, dataset=dataset, status="running", attempt=1,
                         heartbeat_at=long_ago, started_at=long_ago, worker_host="gone")
print(run.pk)
"""


def test_runplatform_reaps_a_silent_run_with_no_worker_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY")}
    env.update(CUBELAB_VAR_DIR=str(tmp_path), DEBUG="1", PYTHONUNBUFFERED="1",
               CUBELAB_REAPER_INTERVAL_S="1", CUBELAB_HEARTBEAT_TIMEOUT_S="3")
    log = tmp_path / "runplatform.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "manage.py", "runplatform", "--no-demo", "--no-worker",
                                    "--port", str(free_port())], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "cubelab is running" in log.read_text(), 150, "runplatform", process, log)
        (tmp_path / "faq.jsonl").write_bytes(dialogue_jsonl(24))
        made = subprocess.run([sys.executable, "-c", SILENT_RUN, str(tmp_path / "faq.jsonl")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
        run_id = int(made.stdout.split()[-1])

        def status() -> tuple:
            with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite3", timeout=30)) as db:
                return db.execute("SELECT status, error FROM runs_run WHERE id = ?", (run_id,)).fetchone()

        wait_for(lambda: status()[0] == "interrupted", 60, "the reaper", process, log)
        assert "its worker (gone) sent no heartbeat for over 3 s" in status()[1]
        assert f"run {run_id}: interrupted" in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:  # after a failed assertion too: SIGTERM first, so it stops its children (SIGKILL would orphan them)
        stop_process(process, timeout=60)
