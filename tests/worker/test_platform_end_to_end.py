"""The whole platform for real: Redis, a Celery worker process, Daphne, a websocket client.

A run submitted through the REST API is trained by the worker (the real trainer, a tiny
offline teacher), its events arrive on a real websocket, and it ends `succeeded` with its
metrics stored.
"""

import io
import json
import time
import zipfile

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import api_call, dialogue_jsonl

pytestmark = pytest.mark.slow

FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    from tests.trainer.tiny_models import build_tiny_teachers

    return build_tiny_teachers(tmp_path_factory.mktemp("teachers"))["bert"]  # 32-D


def ws_url(base_url: str, run_id: int) -> str:
    return base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"


def follow(base_url: str, token: str, run_id: int, timeout: float = 180) -> list[dict]:
    """Every message of the run's websocket until a final status."""
    messages = []
    deadline = time.monotonic() + timeout
    with connect(ws_url(base_url, run_id), additional_headers={"Authorization": f"Token {token}"}) as ws:
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            messages.append(message)
            if message["type"] == "status" and message["status"] in FINISHED:
                return messages
    raise TimeoutError(f"run {run_id} did not finish; got {messages[-3:]}")


def test_a_run_trains_on_a_real_worker_and_streams_live(daphne_server, celery_worker, platform_user, tiny_bert):
    token = platform_user.token
    status, dataset = api_call(daphne_server, "/api/v1/datasets/", token, "POST",
                               fields={"name": "faq", "kind": "dialogue"},
                               files={"file": ("faq.jsonl", dialogue_jsonl(24))})
    assert status == 201, dataset
    config = {"task": "dialogue", "seed": 0, "cube": {"lattice": [2, 2, 8], "steps": 2, "hidden_dim": 16},
              "train": {"epochs": 2, "batch_size": 8, "device": "cpu"},
              "teachers": [{"name": "tiny-bert", "path": tiny_bert, "device": "cpu"}]}
    status, run = api_call(daphne_server, "/api/v1/runs/", token, "POST",
                           json_body={"name": "e2e", "dataset": dataset["id"], "config": config})
    assert status == 201 and run["status"] == "queued", run

    messages = follow(daphne_server, token, run["id"])

    assert messages[0]["type"] == "status"  # the current state on connect
    assert messages[-1]["status"] == "succeeded", messages[-1]
    assert all(m["run"] == run["id"] and isinstance(m["time"], float) for m in messages)
    steps = [m for m in messages if m["type"] == "step"]
    evals = [m for m in messages if m["type"] == "eval"]
    assert steps and evals and any(m["type"] == "checkpoint" for m in messages)
    streamed = [p["step"] for m in steps for p in m["points"]]
    assert streamed == sorted(streamed) and "train/loss" in steps[-1]["metrics"]

    status, detail = api_call(daphne_server, f"/api/v1/runs/{run['id']}/", token)
    assert detail["status"] == "succeeded" and detail["finished_at"] and detail["device"] == "cpu"
    status, metrics = api_call(daphne_server, f"/api/v1/runs/{run['id']}/metrics/", token)
    losses = metrics["train/loss"]
    assert [step for step, _ in losses] == list(range(1, detail["last_step"] + 1))  # gap-free
    assert "val/qa_cosine" in metrics and "baseline/identity/val/qa_cosine" in metrics
    status, checkpoints = api_call(daphne_server, f"/api/v1/runs/{run['id']}/checkpoints/", token)
    status, blob = api_call(daphne_server, checkpoints[-1]["download_url"], token)
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:  # a checkpoint folder, zipped
        assert "model.safetensors" in archive.namelist()


def test_the_real_websocket_refuses_anonymous_clients(daphne_server, platform_user):
    with connect(ws_url(daphne_server, 1)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4401


def test_the_server_serves_the_offline_api_docs_and_their_assets(daphne_server, platform_user):
    import urllib.request

    signed_in = urllib.request.Request(f"{daphne_server}/api/v1/docs/",
                                       headers={"Authorization": f"Token {platform_user.token}"})
    with urllib.request.urlopen(signed_in, timeout=30) as page:
        html = page.read().decode()
    asset = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert asset in html  # served by us (whitenoise), never a CDN
    with urllib.request.urlopen(daphne_server + asset, timeout=30) as response:
        assert response.status == 200 and len(response.read()) > 100_000


def test_the_worker_measured_its_device_and_estimates_use_it(daphne_server, celery_worker, platform_user):
    """The platform's worker timed the default cube as it came up (before "ready."): the
    new-run form's time per epoch divides by that, and says so."""
    token = platform_user.token
    status, dataset = api_call(daphne_server, "/api/v1/datasets/", token, "POST",
                               fields={"name": "sized", "kind": "dialogue"},
                               files={"file": ("sized.jsonl", dialogue_jsonl(40))})
    assert status == 201, dataset
    status, answer = api_call(daphne_server, "/api/v1/configs/validate/", token, "POST", json_body={
        "config_yaml": "task: dialogue\nseed: 0\ncube: {lattice: [8, 8, 6]}\ntrain: {epochs: 1, batch_size: 8}\n"
                       "teachers: [{name: minilm}]\n", "queue": "cpu", "dataset": dataset["id"]})
    assert status == 200, answer
    estimate = answer["estimate"]
    assert estimate["speed_source"].startswith("measured on cpu: "), estimate
    assert estimate["seconds_per_epoch"] > 0
