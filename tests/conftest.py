"""Shared fixtures for the platform's tests (webapp, worker, e2e).

Unit-level (function scope, need the `db` fixture or the django_db mark):
    alice, bob           two users; bob's objects must stay invisible to alice
    api_client           a DRF APIClient signed in as alice with `Authorization: Token …`
    make_dataset         make_dataset(user, rows=24, name="qa") -> Dataset (real file, validated)
    isolated_storage     MEDIA_ROOT, CHECKPOINT_DIR and CACHE_DIR in a tmp dir, in-memory channel layer

Real services (session scope; start processes; the tests that use them are `slow`):
    redis_server         the embedded redis-server on a free 127.0.0.1 port (RedisServer: .url, .port)
    platform_env         env for subprocesses: a migrated file SQLite DB both web and worker
                         see, REDIS_URL, CUBELAB_VAR_DIR in a tmp dir, offline model hub
    platform_user        PlatformUser(username, password, token) created in that DB
    daphne_server        base URL (http://127.0.0.1:PORT) of a real Daphne serving webapp.asgi
    celery_worker        a real `celery -A worker worker -Q cpu,gpu` process (Popen)
The test process's own Django DB is not the services' DB: talk to them over HTTP/websockets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent

DIALOGUE_ROWS = [
    ("How do I reset my password?", "Use the link on the sign-in page."),
    ("Where is my order?", "Your order ships within two days."),
    ("Can I change my address?", "Yes, in the account settings."),
    ("Do you ship abroad?", "We ship to most countries in Europe."),
    ("How do I cancel?", "Open the order and press cancel."),
    ("Is there a student discount?", "Students get ten percent off."),
]


def dialogue_jsonl(rows: int = 24) -> bytes:
    """``rows`` distinct question/answer lines as JSONL bytes."""
    import json

    lines = []
    for index in range(rows):
        question, answer = DIALOGUE_ROWS[index % len(DIALOGUE_ROWS)]
        lines.append(json.dumps({"question": f"{question} (#{index})", "answer": f"{answer} (#{index})"}))
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- unit-level fixtures ---------------------------------------------------------------------


@pytest.fixture
def isolated_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.CACHE_DIR = tmp_path / "cache"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # PBKDF2's million rounds cost seconds per user on a shared 2-core machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return tmp_path


@pytest.fixture
def alice(db, django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(db, django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def api_client(alice):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    return client


@pytest.fixture
def make_dataset(isolated_storage):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webapp.datasets.actions import create_dataset

    def make(user, rows: int = 24, name: str = "qa"):
        return create_dataset(user, name, "dialogue", SimpleUploadedFile("qa.jsonl", dialogue_jsonl(rows)))

    return make


# --- real services ---------------------------------------------------------------------------


@dataclass
class PlatformUser:
    username: str
    password: str
    token: str


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wait_for(check, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s:\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    from webapp.redis_server import start_redis

    server = start_redis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def platform_env(tmp_path_factory, redis_server) -> dict:
    var = tmp_path_factory.mktemp("platform_var")
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
        "REDIS_URL": redis_server.url,
        "CUBELAB_VAR_DIR": str(var),
        "CUBELAB_CACHE_DIR": str(var / "cache"),
        "DEBUG": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    manage(env, "migrate", "--noinput")
    return env


@pytest.fixture(scope="session")
def platform_user(platform_env) -> PlatformUser:
    env = dict(platform_env, DJANGO_SUPERUSER_PASSWORD="carol-password-1")
    manage(env, "createsuperuser", "--noinput", "--username", "carol", "--email", "carol@example.com")
    token = manage(platform_env, "create_api_token", "carol").strip()
    return PlatformUser("carol", "carol-password-1", token)


@pytest.fixture(scope="session")
def daphne_server(platform_env, tmp_path_factory):
    from webapp.redis_server import free_port
    from webapp.runs.management.commands.runplatform import daphne_command

    port = free_port()
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with log.open("w") as out:
        process = subprocess.Popen(daphne_command("127.0.0.1", port), cwd=ROOT, env=platform_env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: urllib.request.urlopen(f"{url}/accounts/login/", timeout=2).status == 200, 60,
             "daphne", process, log)
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def celery_worker(platform_env, tmp_path_factory):
    from webapp.runs.management.commands.runplatform import worker_command

    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(worker_command("cpu,gpu", name="test-worker"), cwd=ROOT, env=platform_env,
                                   stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: "ready." in log.read_text(), 90, "celery worker", process, log)
    process.log_path = log  # type: ignore[attr-defined]
    yield process
    stop_process(process, timeout=30)
