"""Runs as a workflow: fork into the new-run form, tags and notes, the team's baseline,
re-run on another queue, delete (with the files) and dataset deletion."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from webapp.datasets.models import Dataset
from webapp.runs.models import Checkpoint, LogEntry, MetricPoint, Run
from webapp.teams.models import Membership, Team

CONFIG = "task: dialogue\nseed: 5\ncube: {lattice: [8, 8, 6], steps: 2}\ntrain: {epochs: 1, batch_size: 8}\n" \
         "teachers: [{name: minilm}]\n"


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: calls.append(args))
    return calls


@pytest.fixture
def finished_run(alice, make_dataset, sent, django_capture_on_commit_callbacks):
    from webapp.runs.actions import queue_run

    with django_capture_on_commit_callbacks(execute=True):
        run = queue_run(alice, "base", make_dataset(alice), config_yaml=CONFIG, queue="gpu", tags=["sweep"])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    run.refresh_from_db()
    return run


def with_files(run, settings) -> list:
    """A checkpoint folder and a stray file under the run's output folder, plus rows."""
    folder = settings.CHECKPOINT_DIR / f"run-{run.pk}" / "step-2"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 64)
    (settings.CHECKPOINT_DIR / f"run-{run.pk}" / "events.jsonl").write_text("{}\n")
    Checkpoint.objects.create(run=run, step=2, path=f"run-{run.pk}/step-2", size_bytes=64)
    MetricPoint.objects.create(run=run, key="train/loss", step=1, value=0.5, time=1.0)
    LogEntry.objects.create(run=run, time=1.0, level="INFO", message="hello")
    return [folder, settings.CHECKPOINT_DIR / f"run-{run.pk}"]


# --- fork ---------------------------------------------------------------------------------------


def test_it_forks_a_run_into_the_new_run_form(client, alice, finished_run, sent):
    client.force_login(alice)
    page = client.get(f"/runs/new/?from_run={finished_run.pk}")
    form = page.context["form"]
    assert page.status_code == 200 and b'id="forked-from"' in page.content
    assert form["dataset"].value() == finished_run.dataset_id and form["queue"].value() == "gpu"
    assert form["source_run"].value() == finished_run.pk and form["name"].value() == "base (fork)"
    assert "lattice:\n  - 8\n  - 8\n  - 6" in form["config_yaml"].value() and "data:" not in form["config_yaml"].value()
    response = client.post(f"/runs/new/?from_run={finished_run.pk}", {
        "name": "fork", "dataset": finished_run.dataset_id, "queue": "cpu", "source_run": finished_run.pk,
        "config_yaml": form["config_yaml"].value()})
    fork = Run.objects.get(name="fork")
    assert response.status_code == 302 and fork.source_run == finished_run
    assert fork.config["cube"] == finished_run.config["cube"] and fork.team == finished_run.team


def test_a_fork_of_an_unknown_run_is_a_404(client, alice):
    client.force_login(alice)
    assert client.get("/runs/new/?from_run=999").status_code == 404


# --- tags and notes -----------------------------------------------------------------------------


def test_it_saves_tags_and_notes_from_the_run_page(client, alice, finished_run):
    client.force_login(alice)
    response = client.post(f"/runs/{finished_run.pk}/notes/", {"tags": "good, lr-3e-4, good", "notes": "best so far"})
    finished_run.refresh_from_db()
    assert response.status_code == 302 and finished_run.tag_names == ["good", "lr-3e-4"]
    assert finished_run.notes == "best so far"
    page = client.get(f"/runs/{finished_run.pk}/")
    assert b'value="good, lr-3e-4"' in page.content and b"best so far</textarea>" in page.content


def test_it_tags_and_annotates_through_the_api(api_client, finished_run):
    body = api_client.patch(f"/api/v1/runs/{finished_run.pk}/", {"tags": ["a", "b"], "notes": "n"},
                            format="json").json()
    assert body["tags"] == ["a", "b"] and body["notes"] == "n"
    assert [r["id"] for r in api_client.get("/api/v1/runs/?tag=b").json()["results"]] == [finished_run.pk]


# --- baseline -----------------------------------------------------------------------------------


def test_a_team_has_at_most_one_baseline(api_client, alice, bob, finished_run, make_dataset):
    other = Run.objects.create(name="other", owner=alice, dataset=finished_run.dataset, status="succeeded")
    bobs = Run.objects.create(name="bob's", owner=bob, dataset=make_dataset(bob, name="b"), is_baseline=True)
    assert api_client.patch(f"/api/v1/runs/{finished_run.pk}/", {"is_baseline": True},
                            format="json").json()["is_baseline"] is True
    assert api_client.patch(f"/api/v1/runs/{other.pk}/", {"is_baseline": True}, format="json").json()["is_baseline"]
    assert list(Run.objects.filter(is_baseline=True).order_by("pk")) == [other, bobs]  # bob's team keeps its own
    assert [r["id"] for r in api_client.get("/api/v1/runs/?baseline=true").json()["results"]] == [other.pk]
    with pytest.raises(IntegrityError):  # the database enforces it too
        Run.objects.filter(pk=finished_run.pk).update(is_baseline=True)


def test_it_marks_the_baseline_from_the_page_and_shows_it_on_the_runs_list(client, alice, finished_run):
    client.force_login(alice)
    client.post(f"/runs/{finished_run.pk}/baseline/", {"on": "1"})
    assert Run.objects.get(pk=finished_run.pk).is_baseline
    assert b'data-role="baseline"' in client.get("/").content
    client.post(f"/runs/{finished_run.pk}/baseline/", {"on": "0"})
    assert not Run.objects.get(pk=finished_run.pk).is_baseline
    assert b'data-role="baseline"' not in client.get("/").content


# --- re-run -------------------------------------------------------------------------------------


def test_it_reruns_on_another_queue(api_client, finished_run, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/runs/{finished_run.pk}/rerun/", {"queue": "cpu"}, format="json")
    body = response.json()
    assert response.status_code == 201 and body["queue"] == "cpu" and body["status"] == "queued"
    assert body["source_run"] == finished_run.pk and body["tags"] == ["sweep"] and body["name"] == "base (re-run)"
    new = Run.objects.get(pk=body["id"])
    assert new.config == finished_run.config and new.dataset == finished_run.dataset
    assert sent[-1] == (new.pk, "cpu", new.task_id, 5)


def test_a_rerun_keeps_the_queue_unless_told_and_checks_it(api_client, finished_run, sent):
    assert api_client.post(f"/api/v1/runs/{finished_run.pk}/rerun/", {}, format="json").json()["queue"] == "gpu"
    response = api_client.post(f"/api/v1/runs/{finished_run.pk}/rerun/", {"queue": "tpu"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "queue"


def test_it_reruns_from_the_page(client, alice, finished_run, sent):
    client.force_login(alice)
    response = client.post(f"/runs/{finished_run.pk}/rerun/", {"queue": "cpu"})
    new = Run.objects.exclude(pk=finished_run.pk).get()
    assert response["Location"] == f"/runs/{new.pk}/" and new.queue == "cpu" and new.source_run == finished_run


# --- delete -------------------------------------------------------------------------------------


def test_it_deletes_a_finished_run_with_its_files(api_client, finished_run, settings,
                                                   django_capture_on_commit_callbacks):
    paths = with_files(finished_run, settings)
    assert all(path.exists() for path in paths)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(f"/api/v1/runs/{finished_run.pk}/")
    assert response.status_code == 204
    assert not any(path.exists() for path in paths)  # really gone from storage
    assert not Run.objects.filter(pk=finished_run.pk).exists()
    assert not MetricPoint.objects.exists() and not Checkpoint.objects.exists() and not LogEntry.objects.exists()
    assert settings.CHECKPOINT_DIR.exists()  # only the run's own folder went


@pytest.mark.parametrize("status", [Run.Status.RUNNING, Run.Status.QUEUED])
def test_it_refuses_to_delete_an_unfinished_run(api_client, finished_run, settings, status,
                                                django_capture_on_commit_callbacks):
    paths = with_files(finished_run, settings)
    Run.objects.filter(pk=finished_run.pk).update(status=status)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.delete(f"/api/v1/runs/{finished_run.pk}/")
    assert response.status_code == 409 and "cancel it" in response.json()["detail"]
    assert all(path.exists() for path in paths) and Run.objects.filter(pk=finished_run.pk).exists()


def test_it_never_deletes_outside_the_checkpoint_store(finished_run, settings, tmp_path):
    from webapp.runs.actions import run_files

    outside = tmp_path / "precious"
    outside.mkdir()
    Checkpoint.objects.create(run=finished_run, step=1, path="../precious")
    assert outside not in run_files(finished_run)


def test_the_page_asks_before_deleting(client, alice, finished_run, settings, django_capture_on_commit_callbacks):
    paths = with_files(finished_run, settings)
    client.force_login(alice)
    confirm = client.get(f"/runs/{finished_run.pk}/delete/")
    assert confirm.status_code == 200 and b"1 checkpoint" in confirm.content and Run.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/runs/{finished_run.pk}/delete/")
    assert response["Location"] == "/" and not Run.objects.exists() and not any(p.exists() for p in paths)


def test_the_page_refuses_to_delete_a_running_run(client, alice, finished_run):
    Run.objects.filter(pk=finished_run.pk).update(status=Run.Status.RUNNING)
    client.force_login(alice)
    response = client.post(f"/runs/{finished_run.pk}/delete/")
    assert response.status_code == 409 and b"cancel it before deleting it" in response.content
    assert Run.objects.filter(pk=finished_run.pk).exists()


# --- datasets -----------------------------------------------------------------------------------


def test_a_dataset_in_use_cannot_be_deleted(api_client, finished_run):
    response = api_client.delete(f"/api/v1/datasets/{finished_run.dataset_id}/")
    assert response.status_code == 409 and response.json()["detail"] == (
        f"1 run uses dataset #{finished_run.dataset_id}; delete it first")
    assert Dataset.objects.filter(pk=finished_run.dataset_id).exists()


def test_an_unused_dataset_is_deleted_with_its_file(api_client, alice, make_dataset,
                                                    django_capture_on_commit_callbacks):
    dataset = make_dataset(alice)
    path = dataset.path
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert not path.exists() and not Dataset.objects.exists()


def test_the_dataset_page_asks_before_deleting(client, alice, make_dataset, finished_run,
                                               django_capture_on_commit_callbacks):
    client.force_login(alice)
    used = client.post(f"/datasets/{finished_run.dataset_id}/delete/")
    assert used.status_code == 409 and b"delete it first" in used.content
    dataset = make_dataset(alice, name="spare")
    assert client.get(f"/datasets/{dataset.pk}/delete/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/datasets/{dataset.pk}/delete/")["Location"] == "/datasets/"
    assert not dataset.path.exists()


def test_runs_go_to_their_datasets_team(api_client, alice, make_dataset, sent):
    lab = Team.objects.create(name="lab")
    Membership.objects.create(team=lab, user=alice)
    dataset = make_dataset(alice)
    dataset.team = lab
    dataset.save()
    body = api_client.post("/api/v1/runs/", {"dataset": dataset.pk, "config_yaml": CONFIG}, format="json").json()
    assert body["team"] == lab.pk and body["team_name"] == "lab"
    personal = alice.personal_team.pk
    response = api_client.post("/api/v1/runs/", {"dataset": dataset.pk, "config_yaml": CONFIG, "team": personal},
                               format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "team"
