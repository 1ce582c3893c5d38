"""The browser pages through Django's test client: sign-in required, each page renders, and
the forms answer bad input with the same messages as the API while storing nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from webapp.datasets.models import Dataset
from webapp.runs.models import Checkpoint, LogEntry, Run

pytestmark = pytest.mark.django_db

GOOD_CONFIG = """\
task: dialogue
seed: 7
cube: {lattice: [4, 4, 4], steps: 2}
train: {epochs: 1, batch_size: 4}
teachers: [{name: minilm}]
"""
DIALOGUE = "".join(f'{{"question": "q{i}?", "answer": "a{i}."}}\n' for i in range(12))


def make_run(user, dataset, **fields):
    defaults = {"name": "first", "config": {"seed": 7, "cube": {"lattice": [4, 4, 4]}}, "seed": 7,
                "dataset_sha256": dataset.sha256, "teachers": [{"name": "minilm", "revision": "abc"}],
                "package_versions": {"torch": "2.13.0"}, "code_version": "deadbeef"}
    return Run.objects.create(owner=user, dataset=dataset, **(defaults | fields))


@pytest.fixture(autouse=True)
def _storage(isolated_storage):
    """Uploads and checkpoints go to a tmp dir, never under var/."""


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return alice


@pytest.mark.parametrize("name, kwargs", [
    ("pages:runs", {}), ("pages:new_run", {}), ("pages:run_detail", {"run_id": 1}),
    ("pages:datasets", {}), ("pages:dataset_detail", {"dataset_id": 1}),
])
def test_it_sends_anonymous_users_to_sign_in(client, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_it_signs_in_with_the_login_form(client, alice):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    assert client.get(reverse("pages:runs")).status_code == 200


def test_it_lists_runs_with_status_and_queue(client, signed_in, make_dataset):
    run = make_run(signed_in, make_dataset(signed_in), name="lattice sweep")
    response = client.get(reverse("pages:runs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "lattice sweep" in html
    assert f'data-run-id="{run.pk}"' in html and 'class="badge queued"' in html
    assert reverse("api:run-list") in html  # the script polls it


def test_it_shows_run_detail_with_charts_log_checkpoints_and_reproducibility(client, signed_in, make_dataset):
    run = make_run(signed_in, make_dataset(signed_in), status=Run.Status.SUCCEEDED)
    LogEntry.objects.create(run=run, time=1.0, level="info", message="epoch 1 done")
    checkpoint = Checkpoint.objects.create(run=run, step=12, path=f"run-{run.pk}/step-12.pt", size_bytes=2048)
    html = client.get(reverse("pages:run_detail", kwargs={"run_id": run.pk})).content.decode()
    for chart in ("loss", "lr", "throughput", "val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr"):
        assert f'data-chart="{chart}"' in html
    assert "plotly-4.1.1.min.js" in html and "cdn" not in html.lower()
    assert f'data-ws-path="/ws/runs/{run.pk}/"' in html
    assert "00:00:01 info epoch 1 done" in html  # UTC, as the live tail writes it
    assert reverse("api:run-checkpoint-download", kwargs={"pk": run.pk, "checkpoint_id": checkpoint.pk}) in html
    assert run.dataset.sha256 in html and "deadbeef" in html and "torch==2.13.0" in html and "minilm@abc" in html
    assert 'id="cancel"' not in html  # a finished run has nothing to cancel


def test_it_shows_priority_and_the_measured_time_to_start(client, signed_in, make_dataset):
    from datetime import timedelta

    run = make_run(signed_in, make_dataset(signed_in), status=Run.Status.RUNNING)
    Run.objects.filter(pk=run.pk).update(priority=8, started_at=run.created_at + timedelta(seconds=2.5))
    html = client.get(reverse("pages:run_detail", kwargs={"run_id": run.pk})).content.decode()
    assert "priority 8" in html and '<span id="time-to-start">2.5</span> s after submission' in html


def test_it_hides_other_users_runs_and_datasets(client, signed_in, bob, make_dataset):
    dataset = make_dataset(bob)
    run = make_run(bob, dataset)
    assert client.get(reverse("pages:run_detail", kwargs={"run_id": run.pk})).status_code == 404
    assert client.get(reverse("pages:dataset_detail", kwargs={"dataset_id": dataset.pk})).status_code == 404
    assert "first" not in client.get(reverse("pages:runs")).content.decode()


def test_it_rerenders_a_bad_config_with_field_paths_and_queues_nothing(client, signed_in, make_dataset):
    dataset = make_dataset(signed_in)
    bad = GOOD_CONFIG.replace("steps: 2", "stpes: 2").replace("batch_size: 4", "batch_size: 0")
    response = client.post(reverse("pages:new_run"), {
        "name": "typo", "dataset": dataset.pk, "config_yaml": bad, "queue": "cpu",
    })
    assert response.status_code == 400
    html = response.content.decode()
    assert "<code>cube.stpes</code>" in html and "did you mean `steps`?" in html.replace("&#x60;", "`")
    assert "<code>train.batch_size</code>" in html
    assert "stpes: 2" in html  # the user's text is kept for editing
    assert Run.objects.count() == 0


def test_it_queues_a_valid_config_and_opens_the_run(
    client, signed_in, make_dataset, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: sent.append(args))
    dataset = make_dataset(signed_in)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("pages:new_run"), {
            "name": "good", "dataset": dataset.pk, "config_yaml": GOOD_CONFIG, "queue": "gpu",
        })
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("pages:run_detail", kwargs={"run_id": run.pk})
    assert (run.name, run.queue, run.status, run.seed) == ("good", "gpu", "queued", 7)
    assert sent == [(run.pk, "gpu", run.task_id, 5)]


def test_it_offers_stored_datasets_and_validation_endpoint_on_the_new_run_form(client, signed_in, make_dataset):
    make_dataset(signed_in, name="faq")
    dataset = make_dataset(signed_in, name="support chats")
    html = client.get(reverse("pages:new_run") + f"?dataset={dataset.pk}").content.decode()
    assert f'<option value="{dataset.pk}" selected>support chats</option>' in html
    assert f'data-validate-url="{reverse("api:config-validate")}"' in html


def test_it_uploads_a_dataset_and_shows_rows_and_preview(client, signed_in):
    upload = SimpleUploadedFile("faq.jsonl", DIALOGUE.encode())
    response = client.post(reverse("pages:datasets"), {"name": "faq", "kind": "dialogue", "file": upload})
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert f'<dd id="rows">{dataset.rows}</dd>' in html and dataset.rows == 12
    assert "q0?" in html and "a0." in html and dataset.sha256 in html


def test_it_shows_upload_errors_with_line_numbers_and_stores_nothing(client, signed_in):
    broken = DIALOGUE + '{"question": "only a question"}\nnot json at all\n'
    upload = SimpleUploadedFile("faq.jsonl", broken.encode())
    response = client.post(reverse("pages:datasets"), {"name": "faq", "kind": "dialogue", "file": upload})
    assert response.status_code == 400
    html = response.content.decode()
    assert "line 13:" in html and "line 14:" in html
    assert Dataset.objects.count() == 0


def test_it_refuses_a_file_over_the_size_limit(client, signed_in, settings):
    settings.CUBELAB_DATASET_MAX_BYTES = 100
    upload = SimpleUploadedFile("faq.jsonl", DIALOGUE.encode())
    response = client.post(reverse("pages:datasets"), {"name": "faq", "kind": "dialogue", "file": upload})
    assert response.status_code == 400
    assert "more than the limit of 100 bytes" in response.content.decode()
    assert Dataset.objects.count() == 0


def test_it_shows_queue_positions_while_queued(client, signed_in, make_dataset):
    dataset = make_dataset(signed_in)
    make_run(signed_in, dataset, name="ahead")
    waiting = make_run(signed_in, dataset, name="waiting")
    make_run(signed_in, dataset, name="other queue", queue="gpu")
    html = client.get(reverse("pages:runs")).content.decode()
    assert "#2 in the cpu queue" in html and "#1 in the gpu queue" in html
    detail = client.get(reverse("pages:run_detail", kwargs={"run_id": waiting.pk})).content.decode()
    assert "position 2 in the queue" in detail and 'id="cancel"' in detail


def test_it_starts_the_new_run_form_from_the_newest_stored_config(client, signed_in, make_dataset):
    from webapp.configs.actions import create_config

    make_dataset(signed_in)
    config = create_config(signed_in, "small cube", GOOD_CONFIG)
    form = client.get(reverse("pages:new_run")).context["form"]
    assert form.initial["stored_config"] == config.pk
    assert form.initial["config_yaml"] == GOOD_CONFIG
    html = client.get(reverse("pages:new_run")).content.decode()
    assert f'<option value="{config.pk}" selected>small cube</option>' in html
    assert "lattice: [4, 4, 4]" in html  # the editor holds the YAML; the picker's map too


def test_it_shows_dataset_warnings_with_line_numbers(client, signed_in):
    with_duplicate = DIALOGUE + DIALOGUE.splitlines(keepends=True)[0]
    upload = SimpleUploadedFile("faq.jsonl", with_duplicate.encode())
    response = client.post(reverse("pages:datasets"), {"name": "faq", "kind": "dialogue", "file": upload})
    dataset = Dataset.objects.get()
    assert dataset.warnings and dataset.rows == 12
    html = client.get(response["Location"]).content.decode()
    assert "line 13:" in html
