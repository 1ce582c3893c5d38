"""The sweeps REST API and pages: create, validate, show ranked, stop, and team scoping."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from webapp.runs.models import Run
from webapp.sweeps.models import Sweep

BASE = """
task: dialogue
seed: 3
cube: {lattice: [8, 8, 6], steps: 2}
train: {epochs: 1, batch_size: 8}
teachers: [{name: minilm}]
"""
SPACE = ("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n"
         "cube.steps: {type: int, low: 2, high: 8}\n")


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: calls.append(args))
    return calls


def start(api_client, dataset, **fields):
    body = {"name": "lr sweep", "dataset": dataset.pk, "base_config_yaml": BASE, "search_space_yaml": SPACE,
            "method": "random", "budget": 4, "parallelism": 2} | fields
    return api_client.post("/api/v1/sweeps/", body, format="json")


def test_it_starts_a_sweep_and_queues_its_first_trials(api_client, alice, make_dataset, sent,
                                                         django_capture_on_commit_callbacks):
    dataset = make_dataset(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = start(api_client, dataset)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "running" and body["counts"]["running"] == 2 and len(sent) == 2
    runs = api_client.get(f"/api/v1/runs/?tag=sweep:{body['id']}").json()
    runs = runs["results"] if isinstance(runs, dict) else runs
    assert len(runs) == 2 and all(run["status"] == "queued" for run in runs)


def test_it_refuses_an_unknown_key_naming_it(api_client, alice, make_dataset, sent):
    response = start(api_client, make_dataset(alice), search_space_yaml="cube.stpes: {type: int, low: 1, high: 3}\n")
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "cube.stpes"
    assert Sweep.objects.count() == 0 and not sent


def test_it_validates_without_saving(api_client, alice, make_dataset):
    url = "/api/v1/sweeps/validate/"
    ok = api_client.post(url, {"base_config_yaml": BASE, "search_space_yaml": SPACE, "method": "grid"}, format="json")
    assert ok.status_code == 200 and ok.json()["valid"] is False  # a float without points cannot be a grid
    assert ok.json()["errors"][0]["path"] == "train.lr"
    space = "cube.steps: {type: int, low: 2, high: 4}\ncube.cell: {type: categorical, choices: [mlp, gmlp]}\n"
    grid = api_client.post(url, {"base_config_yaml": BASE, "search_space_yaml": space, "method": "grid",
                                 "dataset": make_dataset(alice).pk}, format="json").json()
    assert grid == {"valid": True, "errors": [], "grid_size": 6}
    bad = api_client.post(url, {"base_config_yaml": BASE, "search_space_yaml": "cube.steps: {type: int, low: 0, "
                                "high: 4}\n"}, format="json").json()
    assert bad["valid"] is False and bad["errors"][0]["path"] == "cube.steps"
    assert bad["errors"][0]["message"].startswith("0 is not valid:")
    assert Sweep.objects.count() == 0


def test_it_shows_trials_ranked_with_history_and_importances(api_client, alice, make_dataset, sent):
    sweep_id = start(api_client, make_dataset(alice), budget=4, parallelism=4).json()["id"]
    sweep = Sweep.objects.get(pk=sweep_id)
    values = [0.2, 0.9, 0.5]
    for trial, value in zip(sweep.trials.order_by("number"), values):
        Run.objects.filter(pk=trial.run_id).update(status="succeeded", finished_at=timezone.now(),
                                                   summary={"val/qa_cosine": value})
    body = api_client.get(f"/api/v1/sweeps/{sweep_id}/").json()
    assert [t["number"] for t in body["trials"]] == [1, 2, 0, 3]
    assert [t["rank"] for t in body["trials"]] == [1, 2, 3, None]
    assert body["trials"][3]["state"] == "running"
    assert body["history"] == [{"number": 0, "value": 0.2, "best": 0.2}, {"number": 1, "value": 0.9, "best": 0.9},
                               {"number": 2, "value": 0.5, "best": 0.9}]
    assert set(body["importances"]) == {"train.lr", "cube.steps"}
    assert abs(sum(body["importances"].values()) - 1) < 1e-6
    assert body["best"]["number"] == 1 and body["best"]["value"] == 0.9


def test_it_stops_a_sweep_and_refuses_a_second_stop(api_client, alice, make_dataset, sent):
    sweep_id = start(api_client, make_dataset(alice)).json()["id"]
    response = api_client.post(f"/api/v1/sweeps/{sweep_id}/stop/", {"mode": "cancel"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "stopped"
    assert set(Run.objects.filter(tags__name=f"sweep:{sweep_id}").values_list("status", flat=True)) == {"cancelled"}
    again = api_client.post(f"/api/v1/sweeps/{sweep_id}/stop/", {"mode": "finish"}, format="json")
    assert again.status_code == 409
    assert api_client.post(f"/api/v1/sweeps/{sweep_id}/stop/", {"mode": "later"}, format="json").status_code == 400


def test_another_teams_sweep_is_not_found(api_client, alice, bob, make_dataset, sent, client):
    from rest_framework.authtoken.models import Token

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    sweep_id = start(other, make_dataset(bob, name="bob's")).json()["id"]
    assert api_client.get(f"/api/v1/sweeps/{sweep_id}/").status_code == 404
    assert api_client.post(f"/api/v1/sweeps/{sweep_id}/stop/", {}, format="json").status_code == 404
    listing = api_client.get("/api/v1/sweeps/").json()
    assert (listing["results"] if isinstance(listing, dict) else listing) == []
    assert start(api_client, make_dataset(bob, name="bob's 2")).status_code == 400  # not alice's dataset
    client.force_login(alice)
    assert client.get(f"/sweeps/{sweep_id}/").status_code == 404
    assert Sweep.objects.get(pk=sweep_id).status == "running"


def test_the_pages_render_and_the_form_starts_a_sweep(client, alice, make_dataset, sent):
    client.force_login(alice)
    dataset = make_dataset(alice)
    assert client.get("/sweeps/").status_code == 200
    page = client.get("/sweeps/new/")
    assert page.status_code == 200 and b"api/v1/sweeps/validate/" in page.content
    form = {"name": "from the browser", "dataset": dataset.pk, "queue": "cpu", "base_config_yaml": BASE,
            "search_space_yaml": SPACE, "method": "tpe", "metric": "val/qa_cosine", "direction": "maximize",
            "budget": 3, "parallelism": 1, "pruning": "on"}
    bad = client.post("/sweeps/new/", form | {"search_space_yaml": "cube.stpes: {type: int, low: 1, high: 2}\n"})
    assert bad.status_code == 400 and b"cube.stpes" in bad.content
    response = client.post("/sweeps/new/", form)
    sweep = Sweep.objects.get(name="from the browser")
    assert response.status_code == 302 and response["Location"] == f"/sweeps/{sweep.pk}/"
    detail = client.get(f"/sweeps/{sweep.pk}/")
    assert detail.status_code == 200 and b"plotly" in detail.content and b"history-plot" in detail.content
    assert b"/sweeps/" in client.get("/sweeps/").content and sweep.trials.count() == 1


def test_validate_gives_the_base_configs_preflight_estimate_for_the_queue(api_client, alice, make_dataset):
    body = api_client.post("/api/v1/sweeps/validate/", {"base_config_yaml": BASE, "search_space_yaml": SPACE,
                                                        "queue": "cpu", "dataset": make_dataset(alice).pk},
                           format="json").json()
    assert body["valid"] and body["estimate"]["queue"] == "cpu"
    assert body["estimate"]["parameters"] > 0 and body["estimate"]["activation_bytes"] > 0
    assert "estimate" not in api_client.post("/api/v1/sweeps/validate/", {"base_config_yaml": BASE,
                                                                           "search_space_yaml": SPACE},
                                              format="json").json()


def test_it_sweeps_lattice_sizes_and_each_run_gets_its_lattice(api_client, alice, make_dataset, sent):
    space = "cube.lattice: {type: categorical, choices: [[8, 8, 6], [8, 8, 3], [4, 4, 24]]}\n"
    response = start(api_client, make_dataset(alice), search_space_yaml=space, method="grid", budget=3,
                     parallelism=3)
    assert response.status_code == 201, response.json()
    body = api_client.get(f"/api/v1/sweeps/{response.json()['id']}/").json()
    assert sorted(t["params"]["cube.lattice"] for t in body["trials"]) == [[4, 4, 24], [8, 8, 3], [8, 8, 6]]
    for trial in body["trials"]:
        run = api_client.get(f"/api/v1/runs/{trial['run']}/").json()
        assert run["config"]["cube"]["lattice"] == trial["params"]["cube.lattice"]
        assert "lattice=" + "×".join(map(str, trial["params"]["cube.lattice"])) in run["name"]


def test_it_refuses_a_range_with_values_the_schema_refuses(api_client, alice, make_dataset, sent):
    response = start(api_client, make_dataset(alice),
                     search_space_yaml="cube.neighbourhood: {type: int, low: 6, high: 26}\n")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["path"] == "cube.neighbourhood"
    assert error["message"].startswith("7 is not valid: Input should be 6 or 26")
    assert Sweep.objects.count() == 0 and not sent


def test_a_trial_that_cannot_be_queued_shows_why_and_the_sweep_goes_on(api_client, alice, make_dataset, sent):
    space = ("cube.lattice: {type: categorical, choices: [[8, 8, 6], [8, 8, 5]]}\n"
             "cube.projection: {type: categorical, choices: [learned, exact]}\n")
    response = start(api_client, make_dataset(alice), base_config_yaml=BASE.replace("steps: 2}", "steps: 2, "
                     "projection: learned}"), search_space_yaml=space, method="grid", budget=4, parallelism=4)
    assert response.status_code == 201, response.json()
    body = api_client.get(f"/api/v1/sweeps/{response.json()['id']}/").json()
    assert body["status"] == "running" and body["error"] == ""
    assert body["counts"] == {"running": 3, "complete": 0, "pruned": 0, "fail": 1}
    failed = next(t for t in body["trials"] if t["state"] == "fail")
    assert failed["run"] is None and failed["params"] == {"cube.lattice": [8, 8, 5], "cube.projection": "exact"}
    assert failed["reason"].startswith("invalid config (lattice=8×8×5, projection=exact): cube.lattice: lattice "
                                       "8×8×5 = 320 cells cannot hold 384-D vectors exactly")
