"""A config from the web names teacher folders only under the allowed roots.

Anything else (a missing path, a file, a server folder, a model folder outside the roots, a
symlink or `..` out of a root) gets the same message on the same field, and nothing is queued:
the answer says nothing about which server paths exist.
"""

from __future__ import annotations

import json

import pytest

from webapp.runs.models import Run

CONFIG = {"task": "dialogue", "seed": 0, "cube": {"lattice": [2, 2, 8], "steps": 2, "hidden_dim": 16},
          "train": {"epochs": 1, "batch_size": 8}}


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args, **kwargs: calls.append(args))
    return calls


@pytest.fixture
def roots(settings, tmp_path):
    """An allowed teacher root and a folder beside it that is not one; both hold a model folder."""
    allowed, outside = tmp_path / "teachers", tmp_path / "elsewhere"
    for root in (allowed, outside):
        model = root / "tiny"
        model.mkdir(parents=True)
        (model / "config.json").write_text(json.dumps({"hidden_size": 32}))
    settings.CUBELAB_TEACHER_DIRS = [allowed]
    return allowed, outside


def submit(api_client, dataset, teacher: dict):
    return api_client.post("/api/v1/runs/", {"dataset": dataset.pk, "config": {**CONFIG, "teachers": [teacher]}},
                           format="json")


def outside(field: str, name: str = "mine") -> list[dict]:
    return [{"path": f"teachers[0].{field}",
             "message": f"teacher `{name}`: {field} is outside the allowed teacher folders (CUBELAB_TEACHER_DIRS)"}]


def test_it_queues_a_teacher_under_an_allowed_root(api_client, alice, make_dataset, sent, roots):
    response = submit(api_client, make_dataset(alice), {"name": "mine", "path": str(roots[0] / "tiny")})
    assert response.status_code == 201, response.json()
    run = Run.objects.get()
    assert run.status == Run.Status.QUEUED and run.teachers[0]["path"] == str(roots[0] / "tiny")


def test_it_refuses_every_path_outside_the_roots_with_one_message(api_client, alice, make_dataset, sent, roots):
    dataset = make_dataset(alice)
    (roots[1] / "a-file").write_text("x")
    probes = [roots[1] / "tiny",  # a real model folder
              roots[1],  # a folder without config.json
              roots[1] / "a-file", roots[1] / "no-such-folder", "/", "/etc", "~",
              roots[0] / ".." / "elsewhere" / "tiny"]  # `..` out of a root
    answers = [submit(api_client, dataset, {"name": "mine", "path": str(probe)}) for probe in probes]
    assert [answer.status_code for answer in answers] == [400] * len(probes)
    assert [answer.json()["errors"] for answer in answers] == [outside("path")] * len(probes)
    assert Run.objects.count() == 0 and sent == []


def test_it_refuses_a_symlink_out_of_a_root(api_client, alice, make_dataset, sent, roots):
    (roots[0] / "link").symlink_to(roots[1] / "tiny")
    response = submit(api_client, make_dataset(alice), {"name": "mine", "path": str(roots[0] / "link")})
    assert response.status_code == 400 and response.json()["errors"] == outside("path")
    assert Run.objects.count() == 0 and sent == []


def test_it_refuses_a_name_that_is_a_path_outside_the_roots(api_client, alice, make_dataset, sent, roots):
    dataset = make_dataset(alice)
    for name in (str(roots[1] / "tiny"), str(roots[1] / "missing"), "../elsewhere", "a/b/c"):
        response = submit(api_client, dataset, {"name": name})
        assert response.status_code == 400 and response.json()["errors"] == outside("name", name), name
    assert Run.objects.count() == 0 and sent == []


def test_a_name_that_is_a_folder_under_a_root_is_accepted(api_client, alice, make_dataset, sent, roots):
    response = submit(api_client, make_dataset(alice), {"name": str(roots[0] / "tiny")})
    assert response.status_code == 201, response.json()


def test_inside_a_root_a_folder_without_config_json_is_still_explained(api_client, alice, make_dataset, sent, roots):
    (roots[0] / "empty").mkdir()
    response = submit(api_client, make_dataset(alice), {"name": "mine", "path": str(roots[0] / "empty")})
    assert response.status_code == 400 and "holds no config.json" in response.json()["errors"][0]["message"]


def test_the_bundled_minilm_and_hub_names_are_not_folders(api_client, alice, make_dataset, sent, roots):
    from webapp.runs.preflight import named_folder
    from trainer.config import TeacherConfig

    assert named_folder(TeacherConfig(name="minilm")) is None
    assert named_folder(TeacherConfig(name="sentence-transformers/all-mpnet-base-v2")) is None
    response = submit(api_client, make_dataset(alice), {"name": "minilm"})
    assert response.status_code == 201, response.json()


def test_the_default_root_is_teachers_beside_the_media_folder(monkeypatch, tmp_path):
    import importlib

    import webapp.settings

    monkeypatch.delenv("CUBELAB_TEACHER_DIRS", raising=False)
    monkeypatch.setenv("CUBELAB_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("CUBELAB_MEDIA_DIR", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        assert importlib.reload(webapp.settings).CUBELAB_TEACHER_DIRS == [tmp_path / "teachers"]
        monkeypatch.setenv("CUBELAB_TEACHER_DIRS", "/models:/srv/more")
        assert [p.as_posix() for p in importlib.reload(webapp.settings).CUBELAB_TEACHER_DIRS] == ["/models", "/srv/more"]
    finally:
        monkeypatch.undo()
        importlib.reload(webapp.settings)
