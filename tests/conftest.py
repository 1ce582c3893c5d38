"""Shared fixtures for the platform's tests (webapp, worker, e2e).

Unit-level (function scope, need the `db` fixture or the django_db mark):
    alice, bob           two users; bob's objects must stay invisible to alice
    api_client           a DRF APIClient signed in as alice with `Authorization: Token …`
    make_dataset         make_dataset(user, rows=24, name="qa") -> Dataset (real file, validated)
    isolated_storage     MEDIA_ROOT, CHECKPOINT_DIR and CACHE_DIR in a tmp dir, in-memory channel layer

Real services (session scope; start processes; the tests that use them are `slow`):
    redis_server         the embedded redis-server on a free 127.0.0.1 port (RedisServer: .url, .port)
    platform_services    Platform(env, url, user, worker, web, logs): everything below, started once
    platform_env         env for subprocesses: a migrated file SQLite DB both web and worker
                         see, REDIS_URL, CUBELAB_VAR_DIR in a tmp dir, offline model hub
    platform_user        PlatformUser(username, password, token) created in that DB
    daphne_server        base URL (http://127.0.0.1:PORT) of a real Daphne serving webapp.asgi
                         (HTTP pages, API and websockets; DEBUG=1 so static files are served)
    celery_worker        a real `celery -A worker worker -Q cpu,gpu --pool solo` process (Popen)
The test process's own Django DB is not the services' DB: talk to them over HTTP/websockets
(``api_call`` below is a small client for the REST API).
"""

from __future__ import annotations

import contextlib
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


@pytest.fixture(scope="session", autouse=True)
def _teacher_dirs_include_tmp(tmp_path_factory):
    """The web platform loads teachers only from allowed folders; tests build tiny teachers
    under pytest's temporary root, so it is allowed here (and in every process the tests
    start, through the environment)."""
    from django.conf import settings

    settings.CUBELAB_TEACHER_DIRS = [*settings.CUBELAB_TEACHER_DIRS, tmp_path_factory.getbasetemp()]
    os.environ["CUBELAB_TEACHER_DIRS"] = os.pathsep.join(map(str, settings.CUBELAB_TEACHER_DIRS))
    # Workers the tests start (many, each with a fresh database) skip the device measurement;
    # the shared platform's worker does it, as in production (start_platform).
    os.environ["CUBELAB_CALIBRATE_DEVICES"] = "0"


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


SETUP_SCRIPT = """
import django, sys
django.setup()
from django.core.management import call_command
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
call_command("migrate", interactive=False, verbosity=0)
user = get_user_model().objects.create_user(sys.argv[1], password=sys.argv[2])
print(Token.objects.create(user=user).key)
"""


@dataclass
class Platform:
    env: dict
    url: str
    user: PlatformUser
    worker: subprocess.Popen
    web: subprocess.Popen
    logs: Path


@contextlib.contextmanager
def start_platform(var: Path, redis_url: str):
    """Migrated file DB + user, then Daphne and a Celery worker started side by side.

    Yields a Platform; stops both processes on exit. Used by the fixtures below and by
    tests/worker/measure_live_latency.py.
    """
    from webapp.redis_server import free_port, port_is_open
    from webapp.processes import daphne_command, worker_command

    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "CUBELAB_VAR_DIR": str(var),
        "CUBELAB_CACHE_DIR": str(var / "cache"),
        "DEBUG": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "CUBELAB_CALIBRATE_DEVICES": "1",
    })
    # One interpreter for migrate + user + token: each Django start costs seconds on 2 cores.
    setup = subprocess.run([sys.executable, "-c", SETUP_SCRIPT, "carol", "carol-password-1"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=180)
    if setup.returncode != 0:
        raise RuntimeError(f"platform setup failed:\n{setup.stdout}\n{setup.stderr}")
    user = PlatformUser("carol", "carol-password-1", setup.stdout.strip().splitlines()[-1])

    port = free_port()
    web_log, worker_log = var / "daphne.log", var / "worker.log"
    with web_log.open("w") as web_out, worker_log.open("w") as worker_out:
        worker = subprocess.Popen(worker_command("cpu,gpu", name="test-worker"), cwd=ROOT, env=env,
                                  stdout=worker_out, stderr=subprocess.STDOUT)
        web = subprocess.Popen(daphne_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=web_out,
                               stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_is_open(port), 120, "daphne", web, web_log)
        # "ready." comes after the worker has measured its device (worker.calibration).
        wait_for(lambda: "ready." in worker_log.read_text(), 240, "celery worker", worker, worker_log)
        yield Platform(env, f"http://127.0.0.1:{port}", user, worker, web, var)
    finally:
        for process in (worker, web):  # stop both at once: each takes a few seconds
            if process.poll() is None:
                process.terminate()
        for process in (worker, web):
            stop_process(process, timeout=30)


@pytest.fixture(scope="session")
def platform_services(tmp_path_factory, redis_server) -> Platform:
    with start_platform(tmp_path_factory.mktemp("platform_var"), redis_server.url) as platform:
        yield platform


@pytest.fixture(scope="session")
def platform_env(platform_services) -> dict:
    return platform_services.env


@pytest.fixture(scope="session")
def platform_user(platform_services) -> PlatformUser:
    return platform_services.user


@pytest.fixture(scope="session")
def daphne_server(platform_services) -> str:
    return platform_services.url


@pytest.fixture(scope="session")
def celery_worker(platform_services) -> subprocess.Popen:
    return platform_services.worker


def api_call(base_url: str, path: str, token: str, method: str = "GET", json_body=None, fields=None, files=None):
    """A tiny HTTP client for the real server: returns (status, parsed JSON or bytes).

    ``files`` = {field: (filename, bytes)} sends multipart/form-data with ``fields``.
    """
    import json
    import urllib.error
    import uuid

    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    data = None
    if files is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (fields or {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content) in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                         f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    return status, (json.loads(body) if "json" in kind and body else body)
