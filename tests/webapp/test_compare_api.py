"""GET /api/v1/compare/ and its CSV exports: series under a budget (cached or raw, zoomed at
full resolution), config diff, summary, seed groups with mean ± std, baselines, permissions."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from webapp.compare.export import csv_cell
from webapp.compare.models import SeriesCache
from webapp.compare.series import LEVEL_BASE
from webapp.runs.models import MetricPoint, Run

pytestmark = pytest.mark.django_db

URL = "/api/v1/compare/"


def make_run(user, dataset, name, seed=1, steps=4, lr=1e-3, status="succeeded", summary=None, points=None):
    """``points`` = {key: (steps, values)}; times are 1000 + step seconds."""
    config = {"task": "dialogue", "seed": seed, "name": name, "cube": {"lattice": [4, 4, 4], "steps": steps},
              "train": {"lr": lr, "epochs": 2}, "teachers": [{"name": "minilm"}]}
    last = max((int(max(xs)) for xs, _ in (points or {}).values()), default=0)
    run = Run.objects.create(name=name, owner=user, dataset=dataset, config=config, status=status,
                             summary=summary or {}, last_step=last)
    MetricPoint.objects.bulk_create([
        MetricPoint(run=run, key=key, step=int(step), value=float(value), time=1000.0 + step)
        for key, (xs, ys) in (points or {}).items() for step, value in zip(xs, ys)
    ])
    return run


def ids(*runs):
    return ",".join(str(run.pk) for run in runs)


@pytest.fixture
def dataset(alice, make_dataset):
    return make_dataset(alice)


def test_it_shows_only_the_config_keys_that_differ(api_client, alice, dataset):
    a = make_run(alice, dataset, "a", seed=1, steps=4)
    b = make_run(alice, dataset, "b", seed=1, steps=8)
    c = make_run(alice, dataset, "c", seed=2, steps=4, lr=3e-4)
    body = api_client.get(URL, {"runs": ids(a, b, c), "keys": "val/mrr"}).json()
    diff = {row["key"]: row["values"] for row in body["config_diff"]}
    assert set(diff) == {"seed", "name", "cube.steps", "train.lr"}
    assert diff["cube.steps"] == {str(a.pk): 4, str(b.pk): 8, str(c.pk): 4}
    assert diff["train.lr"][str(c.pk)] == 3e-4
    assert [run["id"] for run in body["runs"]] == [a.pk, b.pk, c.pk]


def test_it_returns_each_series_under_the_budget_with_its_extremes(api_client, alice, dataset):
    steps = np.arange(5000)
    loss = np.exp(-steps / 1000.0)
    loss[2500] = 7.0  # a spike
    runs = [make_run(alice, dataset, f"r{i}", seed=i, points={"train/loss": (steps, loss + i),
                                                              "val/mrr": (steps[::500], steps[::500] / 5000)})
            for i in range(3)]
    body = api_client.get(URL, {"runs": ids(*runs), "keys": "train/loss,val/mrr", "max_points": 600}).json()
    assert body["points"] <= 600 and body["points_per_series"] == 100
    for i, run in enumerate(runs):
        series = body["series"][str(run.pk)]["train/loss"]
        assert len(series["x"]) <= 100 and series["n"] == 5000 and series["downsampled"]
        assert series["x"][0] == 0 and series["x"][-1] == 4999
        assert max(series["y"]) == 7.0 + i and 2500 in series["x"]
        assert min(series["y"]) == pytest.approx(loss.min() + i)
        mrr = body["series"][str(run.pk)]["val/mrr"]
        assert mrr["x"] == list(range(0, 5000, 500)) and not mrr["downsampled"]
    # finished runs were cached on first use; the summary uses every point, not the shown ones
    assert SeriesCache.objects.filter(run__in=runs).count() == 6
    stats = body["summary"][str(runs[0].pk)]["train/loss"]
    assert stats == {"last": pytest.approx(loss[-1]), "min": pytest.approx(loss.min()), "max": 7.0, "best": stats["min"]}
    assert body["summary"][str(runs[0].pk)]["val/mrr"]["best"] == pytest.approx(0.9)  # higher is better


def test_a_zoomed_range_comes_at_full_resolution(api_client, alice, dataset):
    steps = np.arange(20_000)
    run = make_run(alice, dataset, "long", points={"train/loss": (steps, np.sin(steps / 50.0))})
    whole = api_client.get(URL, {"runs": run.pk, "keys": "train/loss", "max_points": 400}).json()
    assert len(whole["series"][str(run.pk)]["train/loss"]["x"]) <= 400
    zoom = api_client.get(URL, {"runs": run.pk, "keys": "train/loss", "max_points": 400,
                                "x_min": 1000, "x_max": 1300}).json()
    series = zoom["series"][str(run.pk)]["train/loss"]
    assert series["x"] == list(range(1000, 1301)) and not series["downsampled"]
    assert series["y"][0] == pytest.approx(np.sin(1000 / 50.0))
    by_time = api_client.get(URL, {"runs": run.pk, "keys": "train/loss", "x": "time", "x_min": 3000,
                                   "x_max": 3010}).json()
    assert by_time["series"][str(run.pk)]["train/loss"]["x"] == [1000.0 + s for s in range(2000, 2011)]


def test_a_running_run_is_read_raw_and_not_cached(api_client, alice, dataset):
    run = make_run(alice, dataset, "live", status="running", points={"train/loss": ([0, 1, 2], [3.0, 2.0, 1.0])})
    body = api_client.get(URL, {"runs": run.pk, "keys": "train/loss"}).json()
    assert body["series"][str(run.pk)]["train/loss"]["y"] == [3.0, 2.0, 1.0]
    assert not SeriesCache.objects.filter(run=run).exists()


def test_it_groups_runs_that_differ_only_by_seed_into_mean_and_std(api_client, alice, dataset):
    xs = [0, 10, 20]
    a = make_run(alice, dataset, "s1", seed=1, points={"val/mrr": (xs, [0.1, 0.2, 0.4])})
    b = make_run(alice, dataset, "s2", seed=2, points={"val/mrr": (xs, [0.3, 0.4, 0.4])})
    c = make_run(alice, dataset, "s3", seed=3, points={"val/mrr": (xs, [0.2, 0.6, 0.7])})
    other = make_run(alice, dataset, "deeper", seed=1, steps=8, points={"val/mrr": (xs, [0.5, 0.5, 0.5])})
    body = api_client.get(URL, {"runs": ids(a, b, c, other), "keys": "val/mrr", "group_by": "seed"}).json()
    groups = sorted(body["groups"], key=lambda group: len(group["runs"]))
    assert [group["runs"] for group in groups] == [[other.pk], [a.pk, b.pk, c.pk]]
    band = groups[1]["series"]["val/mrr"]
    assert band["x"] == xs and band["n"] == 3
    assert band["mean"] == pytest.approx([0.2, 0.4, 0.5])
    # population std by hand: step 0 → sqrt(((-.1)² + .1² + 0²)/3)
    assert band["std"] == pytest.approx([np.sqrt(0.02 / 3), np.sqrt(0.08 / 3), np.sqrt(0.06 / 3)])
    by_steps = api_client.get(URL, {"runs": ids(a, other), "keys": "val/mrr", "group_by": "cube.steps"}).json()
    assert [group["runs"] for group in by_steps["groups"]] == [[a.pk, other.pk]]


def test_runs_on_different_datasets_are_never_one_seed_group(api_client, alice, dataset, make_dataset):
    xs = [0, 10]
    a = make_run(alice, dataset, "faq s1", seed=1, points={"val/mrr": (xs, [0.1, 0.2])})
    b = make_run(alice, dataset, "faq s2", seed=2, points={"val/mrr": (xs, [0.3, 0.4])})
    other = make_dataset(alice, name="chats")
    c = make_run(alice, other, "chats s1", seed=1, points={"val/mrr": (xs, [0.7, 0.8])})
    for run in (a, b, c):  # the worker's file path differs per dataset; it is ignored for grouping
        run.config["data"] = {"path": f"data/{run.dataset_id}.jsonl"}
        run.save(update_fields=["config"])
    body = api_client.get(URL, {"runs": ids(a, b, c), "keys": "val/mrr", "group_by": "seed"}).json()
    assert sorted(group["runs"] for group in body["groups"]) == [[a.pk, b.pk], [c.pk]]
    band = next(group for group in body["groups"] if len(group["runs"]) == 2)["series"]["val/mrr"]
    assert band["mean"] == pytest.approx([0.2, 0.3])


def test_it_returns_baselines_from_each_runs_summary(api_client, alice, dataset):
    run = make_run(alice, dataset, "b", summary={"val/mrr": 0.5, "baseline/identity/val/mrr": 0.2,
                                                 "baseline/linear/val/mrr": 0.35})
    body = api_client.get(URL, {"runs": run.pk, "keys": "val/mrr,train/loss"}).json()
    assert body["baselines"] == {str(run.pk): {"val/mrr": {"identity": 0.2, "linear": 0.35}}}
    assert body["summary"][str(run.pk)]["val/mrr"]["last"] == 0.5  # no points: the summary value
    assert body["runs"][0]["is_baseline"] is False


def test_it_returns_the_teams_baseline_run_when_it_is_not_compared(api_client, alice, bob, dataset, make_dataset):
    a = make_run(alice, dataset, "a", points={"train/loss": ([0, 1], [1.0, 0.5])})
    reference = make_run(alice, dataset, "reference", summary={"val/mrr": 0.42},
                         points={"train/loss": ([0, 5, 9], [2.0, 0.9, 0.7]), "val/mrr": ([9], [0.1])})
    Run.objects.filter(pk=reference.pk).update(is_baseline=True)
    theirs = make_run(bob, make_dataset(bob, name="bob data"), "bob ref", summary={"val/mrr": 0.99})
    Run.objects.filter(pk=theirs.pk).update(is_baseline=True)  # another team's: never shown to alice
    body = api_client.get(URL, {"runs": a.pk, "keys": "val/mrr,train/loss,val/none"}).json()
    assert body["team_baselines"] == [{"id": reference.pk, "name": "reference", "team_id": a.team_id,
                                       "team": a.team.name, "values": {"val/mrr": 0.42, "train/loss": 0.7}}]
    assert str(reference.pk) not in body["series"]  # a reference line, not a compared run
    both = api_client.get(URL, {"runs": ids(a, reference), "keys": "val/mrr"}).json()
    assert both["team_baselines"] == []  # already compared: drawn as a run
    assert [run["is_baseline"] for run in both["runs"]] == [False, True]


def test_another_users_runs_are_not_returned(api_client, alice, bob, dataset, make_dataset):
    mine = make_run(alice, dataset, "mine", points={"train/loss": ([0, 1], [1.0, 0.5])})
    theirs = make_run(bob, make_dataset(bob, name="bob data"), "theirs", points={"train/loss": ([0, 1], [9.0, 9.0])})
    body = api_client.get(URL, {"runs": ids(mine, theirs), "keys": "train/loss"}).json()
    assert [run["id"] for run in body["runs"]] == [mine.pk]
    assert body["missing"] == [theirs.pk] and str(theirs.pk) not in body["series"]
    assert api_client.get(URL, {"runs": theirs.pk}).status_code == 404
    assert api_client.get(URL + "curves.csv", {"runs": theirs.pk}).status_code == 404
    api_client.credentials()
    assert api_client.get(URL, {"runs": mine.pk}).status_code == 401


@pytest.mark.parametrize("params, param", [({"runs": "1,x"}, "runs"), ({"runs": ""}, "runs"),
                                           ({"runs": "1", "max_points": "0"}, "max_points"),
                                           ({"runs": "1", "x": "epoch"}, "x"),
                                           ({"runs": "1", "x_min": "5", "x_max": "1"}, "x_max")])
def test_it_rejects_bad_parameters(api_client, params, param):
    response = api_client.get(URL, params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == param


def test_it_caps_the_keys_and_stores_no_cache_for_keys_without_points(api_client, alice, dataset):
    run = make_run(alice, dataset, "done", points={"train/loss": ([0, 1], [1.0, 0.5])})
    too_many = ",".join(f"k{i}" for i in range(51))
    for keys in (too_many, "train/loss," + "x" * 101):
        response = api_client.get(URL, {"runs": run.pk, "keys": keys})
        assert response.status_code == 400 and response.json()["errors"][0]["path"] == "keys"
    assert not SeriesCache.objects.exists()
    body = api_client.get(URL, {"runs": run.pk, "keys": "train/loss,nope/a,nope/b," + "y" * 100}).json()
    assert body["series"][str(run.pk)]["nope/a"] == {"x": [], "y": [], "n": 0, "downsampled": False}
    assert list(SeriesCache.objects.values_list("key", flat=True)) == ["train/loss"]
    again = api_client.get(URL, {"runs": run.pk, "keys": "train/loss,nope/a"}).json()
    assert again["series"][str(run.pk)]["train/loss"]["y"] == [1.0, 0.5]
    assert SeriesCache.objects.count() == 1


def test_csv_cells_that_look_like_formulas_are_quoted():
    assert csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    for text in ("+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell(-0.5) == -0.5 and csv_cell("plain") == "plain" and csv_cell(None) == ""


def test_the_csv_exports_are_guarded_against_injection(api_client, alice, dataset):
    evil = make_run(alice, dataset, "=cmd|' /C calc'!A0", points={"val/mrr": ([0, 5], [0.1, -0.2])},
                    summary={"val/mrr": -0.2})
    plain = make_run(alice, dataset, "plain", steps=8, points={"val/mrr": ([0, 5], [0.3, 0.4])})
    response = api_client.get(URL + "table.csv", {"runs": ids(evil, plain), "keys": "val/mrr"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header = rows[0]
    assert header[:7] == ["id", "name", "status", "dataset", "owner", "created_at", "tags"]
    assert "cube.steps" in header and "val/mrr:best" in header
    assert rows[1][1] == "'=cmd|' /C calc'!A0"
    assert rows[1][header.index("val/mrr:last")] == "-0.2"  # numbers stay numbers
    curves = api_client.get(URL + "curves.csv", {"runs": ids(evil, plain), "keys": "val/mrr"})
    lines = list(csv.reader(io.StringIO(b"".join(curves.streaming_content).decode())))
    assert lines[0] == ["run_id", "run_name", "key", "step", "value"]
    assert lines[1] == [str(evil.pk), "'=cmd|' /C calc'!A0", "val/mrr", "0", "0.1"]
    assert len(lines) == 5


def test_the_full_resolution_curves_csv_returns_every_stored_point(api_client, alice, bob, dataset, make_dataset):
    steps = np.arange(3000)
    evil = make_run(alice, dataset, "@SUM(A1)", points={"train/loss": (steps, -steps / 3000.0),
                                                       "val/mrr": (steps[::100], steps[::100] / 3000.0)})
    plain = make_run(alice, dataset, "plain", points={"train/loss": (steps, steps / 7.0)})
    theirs = make_run(bob, make_dataset(bob, name="bob data"), "theirs", points={"train/loss": ([0], [1.0])})
    params = {"runs": ids(evil, plain, theirs), "keys": "train/loss,val/mrr", "max_points": 100}
    shown = api_client.get(URL + "curves.csv", params)
    assert len(b"".join(shown.streaming_content).splitlines()) <= 101  # the display budget
    response = api_client.get(URL + "curves.csv", params | {"full": "1"})
    assert response.status_code == 200 and "curves-full" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["run_id", "run_name", "key", "step", "time", "value"]
    assert len(rows) == 1 + 3000 + 30 + 3000
    assert rows[2][:5] == [str(evil.pk), "'@SUM(A1)", "train/loss", "1", "1001.0"]
    assert float(rows[2][5]) == pytest.approx(-1 / 3000.0)  # a negative number stays a number
    losses = [float(row[5]) for row in rows if row[0] == str(plain.pk)]
    assert losses == pytest.approx(list(steps / 7.0))
    assert not any(row[0] == str(theirs.pk) for row in rows[1:])
    zoom = api_client.get(URL + "curves.csv", params | {"full": "1", "x_min": 10, "x_max": 19})
    assert len(list(csv.reader(io.StringIO(b"".join(zoom.streaming_content).decode())))) == 1 + 10 + 10
    assert api_client.get(URL + "curves.csv", {"runs": theirs.pk, "full": "1"}).status_code == 404
    bad = api_client.get(URL + "curves.csv", params | {"full": "yes please"})
    assert bad.status_code == 400 and json.loads(bad.content)["errors"][0]["path"] == "full"


def test_the_endpoints_are_in_the_openapi_schema(api_client):
    schema = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/compare/", "/api/v1/compare/runs/", "/api/v1/compare/table.csv",
                 "/api/v1/compare/curves.csv"):
        assert path in schema["paths"], path
    compare = schema["paths"]["/api/v1/compare/"]["get"]
    assert {parameter["name"] for parameter in compare["parameters"]} >= {"runs", "keys", "max_points", "x_min",
                                                                          "group_by"}
    assert compare["responses"]["200"]["content"]["application/json"]["examples"]


def test_a_long_series_is_served_from_the_coarse_level_or_the_finer_ones(api_client, alice, dataset):
    steps = np.arange(40_000)
    values = np.cos(steps / 700.0)
    values[33_333] = -5.0
    run = make_run(alice, dataset, "long", points={"train/loss": (steps, values)})
    few = api_client.get(URL, {"runs": run.pk, "keys": "train/loss", "max_points": 300}).json()
    cache = SeriesCache.objects.get(run=run, key="train/loss")
    assert cache.stats["level_sizes"][0] <= LEVEL_BASE and len(cache.stats["level_sizes"]) == 2
    many = api_client.get(URL, {"runs": run.pk, "keys": "train/loss", "max_points": 3000}).json()
    for body, budget in ((few, 300), (many, 3000)):
        series = body["series"][str(run.pk)]["train/loss"]
        assert len(series["x"]) <= budget and series["x"][0] == 0 and series["x"][-1] == 39_999
        assert min(series["y"]) == -5.0 and 33_333 in series["x"]
    assert len(many["series"][str(run.pk)]["train/loss"]["x"]) > LEVEL_BASE  # came from the finer level
