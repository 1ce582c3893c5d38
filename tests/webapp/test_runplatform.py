"""`manage.py runplatform` starts Redis, Daphne and a worker, and SIGTERM leaves no orphan."""

import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from tests.conftest import ROOT, wait_for, stop_process
from webapp.redis_server import free_port

pytestmark = pytest.mark.slow


def test_it_starts_everything_and_stops_it_all(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY")}
    env.update(CUBELAB_VAR_DIR=str(tmp_path), PORT=str(port), DEBUG="1", PYTHONUNBUFFERED="1")
    log = tmp_path / "runplatform.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "manage.py", "runplatform", "--no-demo"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "ready." in log.read_text() and f"http://127.0.0.1:{port}/" in log.read_text(), 150,
                 "runplatform", process, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10) as response:
            assert response.status == 200
        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "redis-server" in names and "daphne" in names and "celery" in names
        assert "127.0.0.1" in names  # Redis bound to loopback only
        redis_port = int((tmp_path / "redis" / "redis.port").read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], [child.cmdline() for child in alive]
        assert not (tmp_path / "redis" / "redis.port").exists() and redis_port
    finally:  # after a failed assertion too: SIGTERM first, so it stops its children (SIGKILL would orphan them)
        stop_process(process, timeout=60)
