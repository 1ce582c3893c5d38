"""Security rules of issue 6 §4 that a reading of the code can check.

Covered elsewhere: `check --deploy` clean with DEBUG=0 + SECRET_KEY + ALLOWED_HOSTS
(tests/webapp/test_commands.py::test_check_deploy_is_clean_in_production), authorization of
every route, page and websocket (tests/webapp/test_permissions.py), no path traversal in
uploaded names (tests/reliability/test_bad_input.py), no 500 from generated requests
(tests/reliability/test_api_fuzz.py).
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = [path for folder in ("trainer", "webapp", "worker") for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts]


def calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def name_of(call: ast.Call) -> str:
    return ast.unparse(call.func)


def keyword(call: ast.Call, name: str):
    for item in call.keywords:
        if item.arg == name:
            return ast.unparse(item.value)
    return None


def test_nothing_is_unpickled_or_loaded_unsafely():
    problems = []
    for path in CODE:
        for call in calls(path):
            name, where = name_of(call), f"{path.relative_to(ROOT)}:{call.lineno}"
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "pickle.load", "pickle.loads",
                        "marshal.loads", "eval", "exec"):
                problems.append(f"{where}: {name}")
            if name == "torch.load" and keyword(call, "weights_only") != "True":
                problems.append(f"{where}: torch.load without weights_only=True")
            if name.endswith("np.load") or name == "numpy.load":
                if keyword(call, "allow_pickle") != "False":
                    problems.append(f"{where}: np.load without allow_pickle=False")
            if keyword(call, "trust_remote_code") not in (None, "False"):
                problems.append(f"{where}: trust_remote_code")
    assert problems == []


def test_no_secret_is_written_in_the_settings():
    settings = (ROOT / "webapp" / "settings.py").read_text()
    assert re.search(r"^SECRET_KEY\s*=\s*['\"]", settings, re.MULTILINE) is None
    assert re.search(r"PASSWORD\s*=\s*['\"][^'\"]+['\"]", settings) is None


def test_uploads_are_limited():
    from django.conf import settings

    assert 0 < settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 10 * 1024 * 1024
    assert 0 < settings.CUBELAB_DATASET_MAX_BYTES and 0 < settings.CUBELAB_DATASET_MAX_LINE_BYTES


def test_production_refuses_to_start_without_a_secret_and_forces_secure_cookies(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "SECRET_KEY"}
    env.update(DEBUG="0", CUBELAB_VAR_DIR=str(tmp_path), ALLOWED_HOSTS="cubelab.example.org",
               DJANGO_SETTINGS_MODULE="webapp.settings")
    script = "from django.conf import settings; print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)"
    refused = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "SECRET_KEY must be set" in refused.stderr
    env["SECRET_KEY"] = "s" * 60
    ok = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.stdout.split() == ["True", "True"], ok.stderr


@pytest.mark.django_db
def test_forms_are_csrf_protected(client, django_user_model):
    from django.test import Client

    django_user_model.objects.create_user("erin", password="erin-password-1")
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "erin", "password": "erin-password-1"})
    assert response.status_code == 403  # no CSRF token: refused
