import io
import time
import zipfile

import pytest
from rest_framework.test import APIClient

from webapp.runs.models import Checkpoint, MetricPoint, Run

CONFIG = """
task: dialogue
seed: 3
cube: {lattice: [8, 8, 6], steps: 2}
train: {epochs: 1, batch_size: 8}
teachers: [{name: minilm}]
"""


@pytest.fixture
def sent(monkeypatch):
    """Celery sends captured instead of reaching a broker."""
    calls = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: calls.append(args))
    return calls


def make_run(user, dataset, status=Run.Status.QUEUED, **fields) -> Run:
    return Run.objects.create(name="r", owner=user, dataset=dataset, status=status, config={"seed": 1}, **fields)


def test_it_queues_a_run_and_enqueues_after_commit(api_client, alice, make_dataset, sent,
                                                    django_capture_on_commit_callbacks):
    dataset = make_dataset(alice)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api_client.post("/api/v1/runs/", {"name": "first", "dataset": dataset.pk, "config_yaml": CONFIG,
                                                     "queue": "cpu", "tags": ["demo"]}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["queue_position"] == 1 and body["tags"] == ["demo"]
    run = Run.objects.get(pk=body["id"])
    assert len(callbacks) == 1 and sent == [(run.pk, "cpu", run.task_id, 5)]
    assert run.config["data"] == {"path": dataset.file.name, "kind": "dialogue", "max_rows": 1_000_000,
                                  "max_bytes": 512 * 1024 * 1024}
    assert run.seed == 3 and run.dataset_sha256 == dataset.sha256 and run.teachers[0]["name"] == "minilm"


def test_it_accepts_the_config_as_an_object(api_client, alice, make_dataset, sent):
    dataset = make_dataset(alice)
    config = {"task": "dialogue", "seed": 0, "cube": {"lattice": [8, 8, 6]}, "train": {"epochs": 1, "batch_size": 4},
              "teachers": [{"name": "minilm"}]}
    response = api_client.post("/api/v1/runs/", {"dataset": dataset.pk, "config": config}, format="json")
    assert response.status_code == 201 and response.json()["config"]["train"]["batch_size"] == 4


def test_it_rejects_an_invalid_config_naming_the_path_and_queues_nothing(
        api_client, alice, make_dataset, sent, django_capture_on_commit_callbacks):
    dataset = make_dataset(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/runs/", {"dataset": dataset.pk,
                                                     "config_yaml": CONFIG.replace("steps: 2", "stpes: 2")},
                                   format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["path"] == "cube.stpes" and "did you mean `steps`" in errors[0]["message"]
    assert Run.objects.count() == 0 and sent == []


def test_it_refuses_a_dataset_of_another_user(api_client, bob, make_dataset, sent):
    response = api_client.post("/api/v1/runs/", {"dataset": make_dataset(bob).pk, "config_yaml": CONFIG},
                               format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "dataset"


def test_it_lists_filters_and_shows_runs(api_client, alice, bob, make_dataset):
    data = make_dataset(alice)
    done = make_run(alice, data, Run.Status.SUCCEEDED, summary={"val/mrr": 0.5})
    done.set_tags(["best"])
    make_run(alice, data, Run.Status.RUNNING)
    make_run(bob, make_dataset(bob), Run.Status.SUCCEEDED)
    listed = api_client.get("/api/v1/runs/").json()
    assert listed["count"] == 2 and "next" in listed
    assert [r["id"] for r in api_client.get("/api/v1/runs/?status=succeeded").json()["results"]] == [done.pk]
    assert [r["id"] for r in api_client.get("/api/v1/runs/?tag=best").json()["results"]] == [done.pk]
    assert api_client.get(f"/api/v1/runs/?dataset={data.pk}").json()["count"] == 2
    detail = api_client.get(f"/api/v1/runs/{done.pk}/").json()
    assert {"id", "name", "status", "dataset", "config", "created_at", "started_at", "finished_at", "error",
            "summary"} <= detail.keys()
    assert detail["summary"] == {"val/mrr": 0.5}


def test_it_hides_runs_of_other_users(api_client, bob, make_dataset):
    run = make_run(bob, make_dataset(bob))
    for url in (f"/api/v1/runs/{run.pk}/", f"/api/v1/runs/{run.pk}/metrics/"):
        assert api_client.get(url).status_code == 404
    assert api_client.post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 404


def test_it_returns_metrics_since_a_step(api_client, alice, make_dataset):
    run = make_run(alice, make_dataset(alice), Run.Status.RUNNING)
    MetricPoint.objects.bulk_create(
        [MetricPoint(run=run, key=key, step=s, value=s / 10, time=time.time())
         for s in range(1, 6) for key in ("train/loss", "lr", "val/mrr")]
    )
    body = api_client.get(f"/api/v1/runs/{run.pk}/metrics/?keys=train/loss,lr&since_step=3").json()
    assert body == {"train/loss": [[4, 0.4], [5, 0.5]], "lr": [[4, 0.4], [5, 0.5]]}
    assert set(api_client.get(f"/api/v1/runs/{run.pk}/metrics/").json()) == {"train/loss", "lr", "val/mrr"}
    assert api_client.get(f"/api/v1/runs/{run.pk}/metrics/?since_step=x").status_code == 400


def test_it_cancels_a_queued_run_at_once(api_client, alice, make_dataset):
    run = make_run(alice, make_dataset(alice))
    body = api_client.post(f"/api/v1/runs/{run.pk}/cancel/").json()
    assert body["status"] == "cancelled" and body["cancel_requested"] is True and body["finished_at"]
    assert body["end_reason"] == f"cancelled by {alice.username}"


def test_it_flags_a_running_run_for_cancellation(api_client, alice, make_dataset):
    run = make_run(alice, make_dataset(alice), Run.Status.RUNNING)
    body = api_client.post(f"/api/v1/runs/{run.pk}/cancel/").json()
    assert body["status"] == "running" and body["cancel_requested"] is True
    assert body["end_reason"] == f"cancelled by {alice.username}"  # recorded now, kept when the run ends


def test_it_refuses_to_cancel_a_finished_run(api_client, alice, make_dataset):
    run = make_run(alice, make_dataset(alice), Run.Status.SUCCEEDED)
    response = api_client.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 409
    assert response.json()["detail"] == f"run #{run.pk} has already succeeded; there is nothing to cancel"
    run.refresh_from_db()
    assert run.status == "succeeded" and run.cancel_requested is False


def test_it_lists_and_streams_checkpoints(api_client, alice, make_dataset, settings):
    run = make_run(alice, make_dataset(alice), Run.Status.SUCCEEDED)
    run.out_dir.mkdir(parents=True)
    (run.out_dir / "step-4.safetensors").write_bytes(b"weights")
    checkpoint = Checkpoint.objects.create(run=run, step=4, path=f"run-{run.pk}/step-4.safetensors", size_bytes=7)
    listed = api_client.get(f"/api/v1/runs/{run.pk}/checkpoints/").json()
    assert listed[0]["step"] == 4
    response = api_client.get(listed[0]["download_url"])
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"weights"
    assert "attachment" in response["Content-Disposition"]
    assert APIClient().get(listed[0]["download_url"]).status_code == 401
    folder = run.out_dir / "checkpoints" / "step-0000008"  # the trainer's checkpoints are folders
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"m")
    (folder / "state.json").write_text("{}")
    folder_checkpoint = Checkpoint.objects.create(run=run, step=8, path=f"run-{run.pk}/checkpoints/step-0000008")
    zipped = api_client.get(f"/api/v1/runs/{run.pk}/checkpoints/{folder_checkpoint.pk}/download/")
    assert zipped["Content-Disposition"].endswith(f'filename="run-{run.pk}-step-8.zip"')
    with zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content))) as archive:
        assert sorted(archive.namelist()) == ["model.safetensors", "state.json"]
    checkpoint.path = "../../etc/passwd"
    checkpoint.save()
    assert api_client.get(listed[0]["download_url"]).status_code == 404


def test_it_requires_authentication_everywhere(db):
    client = APIClient()
    response = client.get("/api/v1/runs/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert client.post("/api/v1/runs/", {}, format="json").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/runs/").status_code == 401


def test_it_authenticates_with_the_session_too(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/runs/").status_code == 200


def test_it_fails_the_run_readably_when_the_broker_is_down(api_client, alice, make_dataset, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    def unreachable(*args):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr("webapp.runs.actions.send_run_task", unreachable)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/runs/", {"dataset": make_dataset(alice).pk, "config_yaml": CONFIG},
                                   format="json")
    run = Run.objects.get()
    assert run.status == "failed" and run.error.startswith("could not reach the task queue: ConnectionError")
    assert response.status_code == 201
