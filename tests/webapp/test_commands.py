import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from tests.conftest import ROOT, dialogue_jsonl
from webapp.configs.models import Config
from webapp.datasets.models import Dataset


def run_command(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def test_create_api_token_prints_a_working_token(alice, client):
    key = run_command("create_api_token", "alice").strip()
    assert Token.objects.get(user=alice).key == key
    assert run_command("create_api_token", "alice").strip() == key  # stable until rotated
    assert run_command("create_api_token", "alice", "--rotate").strip() != key
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run_command("create_api_token", "nobody")


def test_createsuperuser_noinput_works(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-admin-password")
    run_command("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com")
    assert get_user_model().objects.get(username="admin").check_password("a-long-admin-password")


def test_load_demo_is_idempotent(db, settings, tmp_path, monkeypatch):
    monkeypatch.delenv("CUBELAB_DEMO_PASSWORD", raising=False)
    settings.BASE_DIR = tmp_path
    settings.VAR_DIR = tmp_path / "var"
    (tmp_path / "examples" / "data").mkdir(parents=True)
    (tmp_path / "examples" / "data" / "demo_dialogue.jsonl").write_bytes(dialogue_jsonl(30))
    first = run_command("load_demo")
    password = (tmp_path / "var" / "demo_password").read_text()
    assert f"password: {password}" in first
    second = run_command("load_demo")
    assert "password" not in second
    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password(password)
    assert Dataset.objects.get(owner=demo).rows == 30
    config = Config.objects.get(owner=demo)
    assert config.data["cube"]["lattice"] == [8, 8, 6] and config.data["teachers"][0]["name"] == "minilm"


def _import_settings(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL")}
    return subprocess.run([sys.executable, "-c", "import webapp.settings as s; print(s.DATABASES['default']['NAME'],"
                           " s.REDIS_URL, s.SECRET_KEY == open(s.VAR_DIR / 'secret_key').read().strip() "
                           "if s.DEBUG else s.SECRET_KEY)"],
                          cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_settings_run_with_zero_configuration(tmp_path):
    result = _import_settings(CUBELAB_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    db, redis, persisted = result.stdout.split()
    assert Path(db) == tmp_path / "db.sqlite3" and redis == "redis://127.0.0.1:6390/0" and persisted == "True"
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "redis.port").write_text("7001")  # the embedded Redis was started here
    assert _import_settings(CUBELAB_VAR_DIR=str(tmp_path)).stdout.split()[1] == "redis://127.0.0.1:7001/0"


def test_settings_refuse_production_without_a_secret_key(tmp_path):
    result = _import_settings(CUBELAB_VAR_DIR=str(tmp_path), DEBUG="0")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
    ok = _import_settings(CUBELAB_VAR_DIR=str(tmp_path), DEBUG="0", SECRET_KEY="s" * 50,
                          DATABASE_URL="postgres://u:p@db:5432/cubelab")
    assert ok.returncode == 0 and ok.stdout.split()[0] == "cubelab"


def test_check_deploy_is_clean_in_production(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DATABASE_URL", "REDIS_URL")}
    env = {**clean, "DEBUG": "0", "SECRET_KEY": "k" * 20 + "-Zq8!xR2#pL5@vN9^tB4&" * 3,
           "ALLOWED_HOSTS": "cubelab.example.com", "CUBELAB_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
