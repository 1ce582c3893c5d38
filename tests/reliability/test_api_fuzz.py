"""Fuzz the REST API from its own OpenAPI schema with schemathesis: no response is a 500.

A real Daphne serves a migrated file database holding a user with a token, a dataset, a
saved config and a run; schemathesis (``-n 25`` cases per operation, a time budget) sends
generated requests to every operation with that token. Skipped when schemathesis is not
installed (``pip install schemathesis==4.32.5``).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, dialogue_jsonl, stop_process, wait_for

pytestmark = pytest.mark.slow
FUZZ_BUDGET_S = 150

SETUP = """
import django, sys
django.setup()
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from webapp.configs.actions import create_config
from webapp.datasets.actions import create_dataset
from webapp.runs.actions import queue_run
call_command("migrate", interactive=False, verbosity=0)
call_command("spectacular", file=sys.argv[1], validate=True, fail_on_warn=True)
user = get_user_model().objects.create_user("fuzz", password="fuzz-password-1")
dataset = create_dataset(user, "faq", "dialogue", SimpleUploadedFile("faq.jsonl", open(sys.argv[2], "rb").read()))
body = "task: dialogue\\nseed: 0\\ncube: {lattice: [8, 8, 6], steps: 2}\\ntrain: {epochs: 1, batch_size: 8}\\nteachers: [{name: minilm}]\\n"
create_config(user, "small", body)
queue_run(user, "fuzzed", dataset, config_yaml=body)
print(Token.objects.create(user=user).key)
"""


def test_the_api_answers_no_generated_request_with_a_server_error(tmp_path, redis_server):
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis==4.32.5)")
    from webapp.processes import daphne_command
    from webapp.redis_server import free_port, port_is_open

    import os

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "REDIS_URL": redis_server.url, "CUBELAB_VAR_DIR": str(tmp_path), "DEBUG": "0", "SECRET_KEY": "fuzz-" + "x" * 50,
           "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0",
           "CSRF_COOKIE_SECURE": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("CUBELAB_TEST_DB_NAME", None)
    schema, data = tmp_path / "openapi.yaml", tmp_path / "faq.jsonl"
    data.write_bytes(dialogue_jsonl(24))
    setup = subprocess.run([sys.executable, "-c", SETUP, str(schema), str(data)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert setup.returncode == 0, setup.stderr[-4000:]
    token = setup.stdout.strip().splitlines()[-1]

    port = free_port()
    log = tmp_path / "daphne.log"
    with log.open("w") as out:
        web = subprocess.Popen(daphne_command("127.0.0.1", port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_is_open(port), 120, "daphne", web, log)
        fuzz = subprocess.run(
            [binary, "run", str(schema), "--url", f"http://127.0.0.1:{port}", "-H", f"Authorization: Token {token}",
             "--checks", "not_a_server_error", "--max-examples", "25", "--max-time", str(FUZZ_BUDGET_S),
             "--phases", "examples,coverage,fuzzing", "--seed", "6", "--request-timeout", "30",
             "--generation-database", "none", "--no-color",
             "--exclude-path", "/api/v1/token/"],  # rotating the token would lock the fuzzer out
            cwd=tmp_path, env={**env, "SCHEMATHESIS_HOOKS": ""}, capture_output=True, text=True,
            timeout=FUZZ_BUDGET_S + 120)
    finally:
        stop_process(web)
    report = fuzz.stdout[-6000:] + fuzz.stderr[-2000:]
    statuses = re.findall(r'" (\d{3}) \d+$', log.read_text(), flags=re.MULTILINE)  # Daphne's access log
    assert not [code for code in statuses if code.startswith("5")], report
    assert fuzz.returncode == 0, report + log.read_text()[-4000:]
    # The token stayed valid: most requests reached the views (not a wall of 401s).
    accepted = sum(code.startswith("2") for code in statuses)
    assert accepted >= 100 and statuses.count("401") < len(statuses) / 4, (accepted, statuses.count("401"))
    print(f"\nschemathesis: {len(statuses)} requests, {accepted} answered 2xx, none 5xx")
