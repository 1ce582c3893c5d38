"""The permission matrix: alice and carol share the team `lab`, bob is only in his own.

A run, a dataset and a config of `lab` (made by carol) are reached through every API
endpoint, page, the websocket and the checkpoint download as: bob (another team) -> 404,
anonymous -> 401 (API) / sign-in redirect (pages) / close 4401 (websocket), alice (same
team, not the creator) -> allowed.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from webapp.asgi import application
from webapp.configs.models import Config
from webapp.runs.models import Checkpoint, Run
from webapp.teams.models import Membership, Team

CONFIG = ("task: dialogue\nseed: 1\ncube: {lattice: [8, 8, 6], steps: 2}\ntrain: {epochs: 1, batch_size: 8}\n"
          "teachers: [{name: minilm}]\n")


@pytest.fixture
def lab(alice, django_user_model, make_dataset, settings):
    """Team `lab` = alice + carol, with carol's finished run (and a checkpoint file), dataset and config."""
    carol = django_user_model.objects.create_user("carol", password="carol-password-1")
    team = Team.objects.create(name="lab")
    Membership.objects.create(team=team, user=carol, role="owner")
    Membership.objects.create(team=team, user=alice)
    dataset = make_dataset(carol)
    dataset.team = team
    dataset.save()
    spare = make_dataset(carol, name="unused")
    spare.team = team
    spare.save()
    run = Run.objects.create(name="lab run", owner=carol, dataset=dataset, team=team, status=Run.Status.SUCCEEDED,
                             config_yaml=CONFIG, config={"seed": 1})
    folder = settings.CHECKPOINT_DIR / f"run-{run.pk}" / "step-2"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    checkpoint = Checkpoint.objects.create(run=run, step=2, path=f"run-{run.pk}/step-2", size_bytes=7)
    config = Config.objects.create(name="lab config", body=CONFIG, data={}, owner=carol, team=team)
    return {"run": run, "dataset": dataset, "spare": spare, "config": config, "checkpoint": checkpoint,
            "team": team}


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


# (method, url template, body, status when allowed). Writes come last in each group and are
# chosen so that an allowed call does not remove what the next parametrised case needs.
API_ENDPOINTS = [
    ("get", "/api/v1/runs/{run}/", None, 200),
    ("get", "/api/v1/runs/{run}/metrics/", None, 200),
    ("get", "/api/v1/runs/{run}/logs/", None, 200),
    ("get", "/api/v1/runs/{run}/checkpoints/", None, 200),
    ("get", "/api/v1/runs/{run}/checkpoints/{checkpoint}/download/", None, 200),
    ("patch", "/api/v1/runs/{run}/", {"tags": ["x"], "notes": "n"}, 200),
    ("patch", "/api/v1/runs/{run}/", {"is_baseline": True}, 200),
    ("post", "/api/v1/runs/{run}/cancel/", {}, 409),  # reached the run: it has finished
    ("post", "/api/v1/runs/{run}/rerun/", {"queue": "gpu"}, 201),
    ("delete", "/api/v1/runs/{run}/", None, 204),
    ("get", "/api/v1/datasets/{dataset}/", None, 200),
    ("delete", "/api/v1/datasets/{dataset}/", None, 409),  # reached it: a run uses it
    ("delete", "/api/v1/datasets/{spare}/", None, 204),
    ("get", "/api/v1/configs/{config}/", None, 200),
    ("patch", "/api/v1/configs/{config}/", {"name": "renamed"}, 200),
    ("delete", "/api/v1/configs/{config}/", None, 204),
    ("get", "/api/v1/teams/{team}/", None, 200),
    ("get", "/api/v1/teams/{team}/members/", None, 200),
]


def _call(client, method, template, body, lab):
    url = template.format(**{key: value.pk for key, value in lab.items()})
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize("method, template, body, allowed", API_ENDPOINTS)
def test_it_answers_404_to_another_team(lab, bob, method, template, body, allowed, monkeypatch):
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
    response = _call(_client(bob), method, template, body, lab)
    assert response.status_code == 404, response.content[:200]
    assert Run.objects.filter(pk=lab["run"].pk, is_baseline=False).exists()  # nothing changed


@pytest.mark.parametrize("method, template, body, allowed", API_ENDPOINTS)
def test_it_answers_401_to_anonymous(lab, method, template, body, allowed):
    response = _call(_client(), method, template, body, lab)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("method, template, body, allowed", API_ENDPOINTS)
def test_it_lets_another_member_of_the_team_act(lab, alice, method, template, body, allowed, monkeypatch):
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
    response = _call(_client(alice), method, template, body, lab)
    assert response.status_code == allowed, response.content[:300]


def test_lists_show_only_the_teams_objects(lab, alice, bob, make_dataset):
    mine = make_dataset(bob, name="bob's")
    Run.objects.create(name="bob run", owner=bob, dataset=mine, config={})
    for user, expect in ((alice, {"lab run"}), (bob, {"bob run"})):
        names = {run["name"] for run in _client(user).get("/api/v1/runs/").json()["results"]}
        assert names == expect
    assert {d["name"] for d in _client(bob).get("/api/v1/datasets/").json()["results"]} == {"bob's"}
    assert {d["name"] for d in _client(alice).get("/api/v1/datasets/").json()["results"]} == {"qa", "unused"}
    assert [c["name"] for c in _client(bob).get("/api/v1/configs/").json()["results"]] == []
    assert {t["name"] for t in _client(alice).get("/api/v1/teams/").json()["results"]} == {"alice", "lab"}
    assert {t["name"] for t in _client(bob).get("/api/v1/teams/").json()["results"]} == {"bob"}


PAGES = [
    "/runs/{run}/", "/runs/{run}/delete/", "/runs/new/?from_run={run}", "/datasets/{dataset}/",
    "/datasets/{dataset}/delete/",
]
PAGE_POSTS = [
    ("/runs/{run}/notes/", {"tags": "x", "notes": "n"}),
    ("/runs/{run}/baseline/", {"on": "1"}),
    ("/runs/{run}/rerun/", {"queue": "cpu"}),
    ("/runs/{run}/delete/", {}),
    ("/datasets/{spare}/delete/", {}),
]


def _url(template, lab):
    return template.format(**{key: value.pk for key, value in lab.items()})


@pytest.mark.parametrize("template", PAGES)
def test_pages_answer_by_team(lab, alice, bob, client, template):
    url = _url(template, lab)
    assert client.get(url).status_code == 302 and "/accounts/login/" in client.get(url)["Location"]
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("template, data", PAGE_POSTS)
def test_page_forms_answer_by_team(lab, alice, bob, client, template, data, monkeypatch):
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
    url = _url(template, lab)
    response = client.post(url, data)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(bob)
    assert client.post(url, data).status_code == 404
    client.force_login(alice)
    assert client.post(url, data).status_code == 302  # done, back to a page


def _websocket_close(run_id, user=None):
    headers = []
    if user is not None:
        headers = [(b"authorization", f"Token {Token.objects.get_or_create(user=user)[0].key}".encode())]

    async def scenario():
        ws = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
        await ws.connect()
        message = await ws.receive_output()
        await ws.disconnect()
        return message

    return asyncio.run(asyncio.wait_for(scenario(), 10))


@pytest.mark.django_db(transaction=True)
def test_the_websocket_answers_by_team(lab, alice, bob):
    run = lab["run"].pk
    assert _websocket_close(run) == {"type": "websocket.close", "code": 4401}
    assert _websocket_close(run, bob)["code"] == 4404
    opened = _websocket_close(run, alice)
    assert opened["type"] == "websocket.send" and '"status": "succeeded"' in opened["text"]
