"""The deployment files: the compose file validates and describes the whole platform.

`docker-compose config` (Debian's docker-compose 1.29, `apt-get install docker-compose`)
validates the file against the Compose specification without a Docker engine; the test is
skipped when the binary is absent. The structural checks below run everywhere.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV = {"SECRET_KEY": "test-secret", "POSTGRES_PASSWORD": "test-password"}


@pytest.fixture(scope="module")
def resolved() -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    done = subprocess.run([binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **ENV}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_it_validates_with_docker_compose(resolved):
    assert set(resolved["services"]) == {"postgres", "redis", "web", "worker-cpu", "worker-gpu"}
    gpu = resolved["services"]["worker-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["environment"]["QUEUES"] == "gpu" and resolved["services"]["worker-cpu"]["environment"]["QUEUES"] == "cpu"
    assert resolved["services"]["web"]["environment"]["DATABASE_URL"].startswith("postgres://cubelab:test-password@")


def test_it_refuses_to_start_without_its_secrets():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    env = {key: value for key, value in os.environ.items() if key not in ENV}
    done = subprocess.run([binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)
    assert done.returncode != 0 and "in .env" in done.stderr + done.stdout


def test_every_service_has_a_health_check_and_data_lives_in_volumes():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert all("healthcheck" in service for service in services.values())
    assert services["web"]["command"] == ["web"]  # the entry point migrates before serving
    for name in ("web", "worker-cpu", "worker-gpu"):
        assert "cubelab-data:/data" in services[name]["volumes"]
        assert services[name]["environment"]["DEBUG"] == "0"
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    for name in ("worker-cpu", "worker-gpu"):
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_entrypoint_migrates_and_serves_websockets_with_daphne():
    script = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert "manage.py migrate --noinput" in script and "daphne" in script and "--pool solo" in script
    assert os.access(ROOT / "docker" / "entrypoint.sh", os.X_OK)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE" in dockerfile and "USER cubelab" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile  # a CPU image never pulls CUDA wheels
