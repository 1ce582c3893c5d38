"""The cube view and projector API: pending, then ready once the worker task has run; the
cache serves a second request without recomputing; other teams get 404."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.trainer.helpers import make_config, make_vector_file
from trainer.loop import train
from webapp.cubeview import actions
from webapp.cubeview.models import Inspection
from webapp.runs.models import Checkpoint, Run
from worker.inspect_tasks import compute_inspection


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    """The task closes stale connections, as a worker living for days must; called inside a
    test's transaction that would close the test's own connection (PostgreSQL closes it)."""
    monkeypatch.setattr("worker.inspect_tasks.close_old_connections", lambda: None)


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent to the queue (nothing reaches a broker): [(inspection id, queue)]."""
    calls = []
    monkeypatch.setattr(actions, "send_inspection_task", lambda pk, queue: calls.append((pk, queue)))
    return calls


@pytest.fixture
def finished_run(alice, make_dataset, settings):
    """alice's run, trained for real on 16-D vectors into the platform's checkpoint folder."""
    dataset = make_dataset(alice)
    (settings.MEDIA_ROOT / "vectors").mkdir(parents=True)
    vectors = make_vector_file(settings.MEDIA_ROOT / "vectors" / "pairs.safetensors", rows=64)
    dataset.file.name = "vectors/pairs.safetensors"
    dataset.save()
    config = make_config(vectors, cube={"steps": 2}, train={"epochs": 1, "batch_size": 16})
    run = Run.objects.create(name="tiny", owner=alice, dataset=dataset, team=dataset.team,
                             status=Run.Status.SUCCEEDED, config=config.to_dict())
    result = train(config, out_dir=run.out_dir)
    Checkpoint.objects.create(run=run, step=result.step,
                              path=str(result.checkpoint).removeprefix(str(settings.CHECKPOINT_DIR) + "/"))
    return run


def _run_task(sent):
    for pk, _ in sent:
        compute_inspection(pk)
    sent.clear()


def test_it_answers_pending_then_ready(api_client, finished_run, sent, django_capture_on_commit_callbacks):
    url = f"/api/v1/cubeview/runs/{finished_run.pk}/cube/?example=1"
    with django_capture_on_commit_callbacks(execute=True):
        first = api_client.get(url)
    assert first.status_code == 202 and first.json()["status"] == "pending"
    assert [queue for _, queue in sent] == ["cpu"]
    _run_task(sent)
    ready = api_client.get(url)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    result = ready.json()["result"]
    assert result["lattice"] == [2, 2, 4] and result["examples"][0]["index"] == 1
    assert len(result["examples"][0]["values"]) == 3 and len(result["examples"][0]["cosine"]) == 3


def test_a_cached_view_is_not_computed_again(api_client, finished_run, sent, django_capture_on_commit_callbacks):
    url = f"/api/v1/cubeview/runs/{finished_run.pk}/projector/?components=2"
    with django_capture_on_commit_callbacks(execute=True):
        api_client.get(url)
    _run_task(sent)
    with django_capture_on_commit_callbacks(execute=True):
        again = api_client.get(url)
    assert again.status_code == 200 and again.json()["result"]["method"] == "pca"
    assert sent == [] and Inspection.objects.count() == 1
    # Another channel is another view: computed once more.
    with django_capture_on_commit_callbacks(execute=True):
        other = api_client.get(f"/api/v1/cubeview/runs/{finished_run.pk}/cube/?channel=3")
    assert other.status_code == 202 and len(sent) == 1


def test_a_failure_is_reported_and_can_be_retried(api_client, finished_run, sent, django_capture_on_commit_callbacks):
    url = f"/api/v1/cubeview/runs/{finished_run.pk}/cube/?example=999"
    with django_capture_on_commit_callbacks(execute=True):
        api_client.get(url)
    _run_task(sent)
    failed = api_client.get(url).json()
    assert failed["status"] == "failed" and "outside" in failed["error"]
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.get(url + "&retry=1").status_code == 202
    assert len(sent) == 1


def test_it_validates_parameters(api_client, finished_run, sent):
    answer = api_client.get(f"/api/v1/cubeview/runs/{finished_run.pk}/cube/?channel=8")  # state_dim 8
    assert answer.status_code == 400 and answer.json()["errors"][0]["path"] == "channel"
    assert api_client.get(f"/api/v1/cubeview/runs/{finished_run.pk}/projector/?method=tsne").status_code == 400
    assert sent == []


def test_a_run_without_checkpoint_answers_409(api_client, finished_run, sent):
    finished_run.checkpoints.all().delete()
    assert api_client.get(f"/api/v1/cubeview/runs/{finished_run.pk}/cube/").status_code == 409


def test_it_validates_ownership(finished_run, bob, sent, client):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    for kind in ("cube", "projector"):
        assert other.get(f"/api/v1/cubeview/runs/{finished_run.pk}/{kind}/").status_code == 404
    assert sent == [] and Inspection.objects.count() == 0
    client.force_login(bob)
    assert client.get(f"/runs/{finished_run.pk}/cube/").status_code == 404
    assert client.get(f"/runs/{finished_run.pk}/projector/").status_code == 404


def test_the_pages_render_for_the_team(finished_run, alice, client):
    client.force_login(alice)
    page = client.get(f"/runs/{finished_run.pk}/cube/")
    assert page.status_code == 200 and b"cubeview.js" in page.content and b"plotly-4.1.1.min.js" in page.content
    assert client.get(f"/runs/{finished_run.pk}/projector/").status_code == 200
