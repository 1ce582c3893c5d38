"""Real processes for the reliability tests: a file SQLite DB, Redis, workers we can kill.

    reliability_env   env for subprocesses (migrated DB, a user, fast heartbeats: 1 s beat,
                      3 s timeout, 1 s reaper), plus the tiny teacher's folder
    start_worker      start_worker(name) -> Popen of a real `celery ... --pool solo` worker
    submit_run        submit_run(config) -> run id (dataset + queue_run in one interpreter)
    db_rows           db_rows(sql, *params) -> rows read straight from the services' DB (SQLite
                      file, or PostgreSQL when DATABASE_URL names it)
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ROOT, dialogue_jsonl, stop_process, wait_for

HEARTBEAT = {"CUBELAB_HEARTBEAT_INTERVAL_S": "1", "CUBELAB_HEARTBEAT_TIMEOUT_S": "3", "CUBELAB_REAPER_INTERVAL_S": "1"}

SUBMIT_SCRIPT = """
import django, json, sys
django.setup()
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.contrib.auth import get_user_model
from webapp.datasets.actions import create_dataset
from webapp.runs.actions import queue_run
call_command("migrate", interactive=False, verbosity=0)
user, _ = get_user_model().objects.get_or_create(username="dora")
dataset = create_dataset(user, "faq", "dialogue", SimpleUploadedFile("faq.jsonl", open(sys.argv[2], "rb").read()))
run = queue_run(user, "reliability", dataset, config=json.loads(sys.argv[1]))
print(run.pk)
"""


@pytest.fixture(scope="module")
def reliability_redis(tmp_path_factory):
    """A Redis of these tests' own: the session's Redis also feeds the shared platform worker,
    which would take (and, finding the run absent from its own database, drop) a re-queued run."""
    from webapp.redis_server import start_redis

    server = start_redis(tmp_path_factory.mktemp("reliability_redis"), persist=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reliability_env(tmp_path_factory, reliability_redis):
    from tests.trainer.tiny_models import build_tiny_teachers

    redis_server = reliability_redis
    var = tmp_path_factory.mktemp("reliability_var")
    env = dict(os.environ)
    # PostgreSQL when the suite runs on it (scripts/with_postgres.sh): the services use the
    # DATABASE_URL database itself (pytest-django's test database is the test process's own).
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        database_url = f"sqlite:///{var / 'db.sqlite3'}"
    env.update({
        "DJANGO_SETTINGS_MODULE": "webapp.settings", "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url, "CUBELAB_VAR_DIR": str(var), "CUBELAB_CACHE_DIR": str(var / "cache"),
        "DEBUG": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **HEARTBEAT,
    })
    env.pop("CUBELAB_TEST_DB_NAME", None)
    teacher = build_tiny_teachers(var / "teachers")["bert"]
    (var / "faq.jsonl").write_bytes(dialogue_jsonl(24))
    return {"env": env, "var": var, "teacher": teacher, "database_url": database_url}


@pytest.fixture
def start_worker(reliability_env):
    from webapp.processes import worker_command

    started: list[subprocess.Popen] = []

    def start(name: str, env: dict | None = None) -> subprocess.Popen:
        log = reliability_env["var"] / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(worker_command("cpu,gpu", name=name), cwd=ROOT,
                                       env=env or reliability_env["env"], stdout=out, stderr=subprocess.STDOUT)
        started.append(process)
        wait_for(lambda: "ready." in log.read_text(), 120, name, process, log)
        process.log = log
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        stop_process(process, timeout=30)


@pytest.fixture
def submit_run(reliability_env):
    def submit(config: dict, env: dict | None = None) -> int:
        done = subprocess.run([sys.executable, "-c", SUBMIT_SCRIPT, json.dumps(config),
                               str(reliability_env["var"] / "faq.jsonl")], cwd=ROOT, env=env or reliability_env["env"],
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"submit failed:\n{done.stdout}\n{done.stderr}")
        return int(done.stdout.strip().splitlines()[-1])

    return submit


@pytest.fixture
def db_rows(reliability_env):
    url = reliability_env["database_url"]

    def rows(sql: str, *params) -> list[tuple]:
        if url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as connection:
                return connection.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            return connection.execute(sql.replace("?", "%s"), params).fetchall()

    return rows


def tiny_config(teacher: str, epochs: int, checkpoint_every: int) -> dict:
    """A tiny cube on the tiny 32-D teacher: milliseconds per step on a CPU."""
    return {"task": "dialogue", "seed": 0, "cube": {"lattice": [2, 2, 8], "steps": 2, "hidden_dim": 16},
            "train": {"epochs": epochs, "batch_size": 4, "device": "cpu", "checkpoint_every": checkpoint_every,
                      "eval_every": 1000},
            "teachers": [{"name": "tiny-bert", "path": teacher, "device": "cpu"}]}
