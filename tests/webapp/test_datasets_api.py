from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.conftest import dialogue_jsonl
from webapp.datasets.models import Dataset


def _upload(client, content: bytes, name: str = "qa.jsonl", kind: str = "dialogue"):
    return client.post("/api/v1/datasets/", {"name": "faq", "kind": kind,
                                             "file": SimpleUploadedFile(name, content)}, format="multipart")


def _stored_files(settings) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_it_stores_a_valid_upload(api_client, alice, settings):
    response = _upload(api_client, dialogue_jsonl(24))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rows"] == 24 and body["kind"] == "dialogue" and len(body["sha256"]) == 64
    assert {"id", "name", "created_at"} <= body.keys()
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.owner == alice and dataset.path.is_file()
    assert dataset.preview[0]["question"] == "How do I reset my password? (#0)"
    assert dataset.file.name.startswith("datasets/") and "qa" not in dataset.file.name  # never the client's name


def test_it_rejects_bad_utf8_with_the_line_number_and_stores_nothing(api_client, settings):
    content = dialogue_jsonl(3) + b'{"question": "caf\xe9", "answer": "x"}\n'
    response = _upload(api_client, content)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["line"] == 4 and "UTF-8" in errors[0]["message"]
    assert Dataset.objects.count() == 0
    assert _stored_files(settings) == []


def test_it_rejects_an_oversize_file(api_client, settings):
    settings.CUBELAB_DATASET_MAX_BYTES = 100
    response = _upload(api_client, dialogue_jsonl(24))
    assert response.status_code == 400
    assert "limit" in response.json()["errors"][0]["message"]
    assert Dataset.objects.count() == 0 and _stored_files(settings) == []


def test_it_requires_authentication(db):
    response = APIClient().get("/api/v1/datasets/")
    assert response.status_code == 401


def test_it_lists_only_my_datasets(api_client, alice, bob, make_dataset):
    mine = make_dataset(alice, name="mine")
    theirs = make_dataset(bob, name="theirs")
    listed = api_client.get("/api/v1/datasets/").json()["results"]
    assert [d["id"] for d in listed] == [mine.pk]
    assert api_client.get(f"/api/v1/datasets/{theirs.pk}/").status_code == 404
    assert api_client.get(f"/api/v1/datasets/{mine.pk}/").json()["rows"] == 24
