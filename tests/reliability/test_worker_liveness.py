"""Docker deployments: a worker's health while it trains, and the code version without .git."""

import os
import shutil
import subprocess
import time

import pytest
import yaml

from tests.conftest import ROOT
from worker import tasks
from worker.tasks import AliveFile

ENV = {"SECRET_KEY": "test-secret", "POSTGRES_PASSWORD": "test-password"}


def test_the_alive_file_is_touched_from_a_thread_while_the_main_thread_is_busy(tmp_path):
    path = tmp_path / "alive"
    alive = AliveFile(path, interval=0.05).start()
    try:
        first = path.stat().st_mtime_ns
        deadline = time.monotonic() + 10
        while path.stat().st_mtime_ns == first:  # the main thread "trains"; the file keeps moving
            assert time.monotonic() < deadline, "the liveness file was not touched again"
            sum(range(10_000))
    finally:
        alive.stop()


def test_the_worker_health_check_reads_the_alive_files_age(tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "CUBELAB_WORKER_ALIVE_FILE=/tmp/cubelab-worker-alive" in dockerfile
    for name in ("worker-cpu", "worker-gpu"):
        check = compose["services"][name]["healthcheck"]
        assert "inspect ping" not in " ".join(check["test"])  # a solo worker that trains cannot answer it
        assert check["test"][:3] == ["CMD", "python", "-c"]
        script = check["test"][3].replace("/tmp/cubelab-worker-alive", str(tmp_path / "alive"))
        (tmp_path / "alive").touch()
        assert subprocess.run(["python3", "-c", script]).returncode == 0  # healthy: fresh file
        old = time.time() - 120
        os.utime(tmp_path / "alive", (old, old))
        assert subprocess.run(["python3", "-c", script]).returncode == 1  # silent for 2 min: unhealthy


def test_code_version_falls_back_to_the_build_argument_without_git(tmp_path, monkeypatch, settings):
    settings.BASE_DIR = tmp_path  # like /app in the image: no .git
    monkeypatch.setenv("CUBELAB_CODE_VERSION", "abc1234")
    tasks.code_version.cache_clear()
    try:
        assert tasks.code_version() == "abc1234"
        monkeypatch.delenv("CUBELAB_CODE_VERSION")
        tasks.code_version.cache_clear()
        assert tasks.code_version() == ""
    finally:
        tasks.code_version.cache_clear()


def test_the_image_and_compose_pass_the_commit_in():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ARG GIT_SHA=""' in dockerfile and "CUBELAB_CODE_VERSION=${GIT_SHA}" in dockerfile
    assert ".git" in (ROOT / ".dockerignore").read_text().split()  # hence the build argument
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    done = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **ENV, "GIT_SHA": "abc1234"}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert services["web"]["build"]["args"]["GIT_SHA"] == "abc1234"
    assert services["worker-gpu"]["build"]["args"]["GIT_SHA"] == "abc1234"
