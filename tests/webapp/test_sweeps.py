"""Sweeps: search-space validation, sampling, scheduling, pruning and stopping (Celery mocked)."""

import math

import pytest
import yaml
from django.utils import timezone

from trainer.config import parse_config
from webapp.runs.models import LogEntry, MetricPoint, Run
from webapp.sweeps import optimiser
from webapp.sweeps.actions import advance_sweep, create_sweep, run_ended, stop_sweep, trial_evaluated
from webapp.sweeps.models import Sweep, Trial
from webapp.sweeps.optimiser import PastTrial, SpaceError

BASE = """
task: dialogue
seed: 3
cube: {lattice: [8, 8, 6], steps: 2}
train: {epochs: 1, batch_size: 8}
teachers: [{name: minilm}]
"""
SPACE = {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
         "cube.steps": {"type": "int", "low": 2, "high": 8},
         "cube.cell": {"type": "categorical", "choices": ["mlp", "gmlp"]}}


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: calls.append(args))
    return calls


def errors_of(space, base=BASE):
    with pytest.raises(SpaceError) as caught:
        optimiser.validate_space(base, optimiser.parse_space(space))
    return caught.value.errors


# --- validation -------------------------------------------------------------------------------

def test_it_accepts_a_valid_space_from_yaml(db):
    space = optimiser.parse_space(yaml.safe_dump(SPACE))
    optimiser.validate_space(BASE, space)
    assert space["train.lr"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}


def test_it_names_an_unknown_key(db):
    errors = errors_of({"cube.stpes": {"type": "int", "low": 2, "high": 4}})
    assert errors[0]["path"] == "cube.stpes" and "unknown" in errors[0]["message"]


def test_it_names_a_key_whose_range_leaves_the_schema(db):
    errors = errors_of({"cube.steps": {"type": "int", "low": 0, "high": 4},
                        "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    assert [e["path"] for e in errors] == ["cube.steps"]
    assert "cube.steps=0" in errors[0]["message"]


def test_it_names_a_bad_choice(db):
    errors = errors_of({"cube.cell": {"type": "categorical", "choices": ["mlp", "transformer"]}})
    assert errors[0]["path"] == "cube.cell" and "transformer" in errors[0]["message"]


@pytest.mark.parametrize("spec, words", [
    ({"type": "floaty", "low": 1, "high": 2}, "type must be one of"),
    ({"type": "int", "low": 1.5, "high": 4}, "integers"),
    ({"type": "float", "low": 2.0, "high": 1.0}, "above high"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log scale"),
    ({"type": "categorical", "choices": []}, "non-empty"),
    ("lr", "must be a mapping"),
    ({"type": "float", "low": 0.0, "high": float("inf")}, "finite"),
    ({"type": "float", "low": 0.1, "high": 1.0, "values": [0.5, 2.0]}, "inside [low, high]"),
])
def test_it_refuses_a_badly_shaped_spec(spec, words):
    with pytest.raises(SpaceError) as caught:
        optimiser.parse_space({"train.lr": spec})
    assert caught.value.errors[0]["path"] == "train.lr" and words in caught.value.errors[0]["message"]


def test_it_refuses_a_key_that_is_no_dotted_path():
    with pytest.raises(SpaceError) as caught:
        optimiser.parse_space({"train.lr=1": {"type": "float", "low": 0.1, "high": 1.0}})
    assert "dotted config key" in caught.value.errors[0]["message"]


def test_it_can_sweep_a_top_level_key(db):
    optimiser.validate_space(BASE, optimiser.parse_space({"seed": {"type": "int", "low": 0, "high": 3}}))


def test_it_reports_an_invalid_base_config(db):
    errors = errors_of(SPACE, base=BASE.replace("steps: 2", "stpes: 2"))
    assert errors[0]["path"] == "base_config.cube.stpes"


def test_a_grid_needs_points_for_a_float():
    with pytest.raises(SpaceError) as caught:
        optimiser.check_method("grid", optimiser.parse_space(SPACE))
    assert caught.value.errors[0]["path"] == "train.lr"


# --- sampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_each_method_suggests_valid_distinct_configs(db, method):
    space = optimiser.parse_space(dict(SPACE, **{"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2,
                                                              "values": [1e-4, 1e-3, 1e-2]}}))
    past = []
    for number in range(6):
        params, attrs = optimiser.suggest(method, space, "maximize", 7, past)
        assert set(params) == set(SPACE)
        config = parse_config(optimiser.apply_params(BASE, params) | {"data": {"path": "x.jsonl"}})
        assert config.train.lr == params["train.lr"] and config.cube.steps == params["cube.steps"]
        assert 2 <= params["cube.steps"] <= 8 and params["cube.cell"] in ("mlp", "gmlp")
        past.append(PastTrial(number, params, "complete", value=float(number), system_attrs=attrs))
    seen = {tuple(sorted(t.params.items())) for t in past}
    assert len(seen) == 6  # no repeats
    if method == "grid":
        assert all("grid_id" in t.system_attrs for t in past)
        assert len({t.system_attrs["grid_id"] for t in past}) == 6
        assert all(t.params["train.lr"] in (1e-4, 1e-3, 1e-2) for t in past)


def test_tpe_moves_toward_the_better_region():
    space = optimiser.parse_space({"train.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    past = []
    for number in range(25):
        params, _ = optimiser.suggest("tpe", space, "maximize", 0, past)
        value = -abs(math.log10(params["train.lr"]) + 3)  # best at 1e-3
        past.append(PastTrial(number, params, "complete", value=value))
    late = [abs(math.log10(t.params["train.lr"]) + 3) for t in past[-8:]]
    early = [abs(math.log10(t.params["train.lr"]) + 3) for t in past[:8]]
    assert sum(late) < sum(early)


def test_the_median_pruner_prunes_a_trial_below_the_median():
    space = optimiser.parse_space({"train.lr": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}})
    past = [PastTrial(i, {"train.lr": 1e-2}, "complete", value=0.9, intermediate={1: 0.5 + i / 100, 2: 0.9})
            for i in range(3)]
    bad = PastTrial(3, {"train.lr": 1e-6}, "running", intermediate={1: 0.1})
    good = PastTrial(3, {"train.lr": 1e-3}, "running", intermediate={1: 0.8})
    kwargs = {"n_startup_trials": 2, "n_warmup_steps": 0}
    assert optimiser.should_prune(space, "maximize", past, bad, **kwargs)
    assert not optimiser.should_prune(space, "maximize", past, good, **kwargs)
    assert not optimiser.should_prune(space, "maximize", past[:1], bad, **kwargs)  # startup trials
    assert optimiser.should_prune(space, "minimize", past, good, **kwargs)


# --- scheduling -------------------------------------------------------------------------------

def make_sweep(user, dataset, **kwargs):
    options = {"name": "s", "dataset": dataset, "base_config_yaml": BASE, "search_space": SPACE, "method": "random",
               "budget": 5, "parallelism": 2}
    return create_sweep(user, **(options | kwargs))


def finish(run, status=Run.Status.SUCCEEDED, value=0.5, metric="val/qa_cosine"):
    Run.objects.filter(pk=run.pk).update(status=status, finished_at=timezone.now(), summary={metric: value})


def test_it_queues_trials_up_to_the_parallelism_then_to_the_budget(alice, make_dataset, sent,
                                                                     django_capture_on_commit_callbacks):
    dataset = make_dataset(alice)
    with django_capture_on_commit_callbacks(execute=True):
        sweep = make_sweep(alice, dataset)
    trials = list(sweep.trials.select_related("run"))
    assert len(trials) == 2 and len(sent) == 2 and sweep.status == "running"
    run = trials[0].run
    assert run.status == "queued" and run.tag_names == [f"sweep:{sweep.pk}"] and run.team_id == dataset.team_id
    assert run.config["train"]["lr"] == trials[0].params["train.lr"]
    assert run.config["cube"]["steps"] == trials[0].params["cube.steps"]
    for round_ in range(10):
        active = [t for t in Trial.objects.filter(sweep=sweep, state="running").select_related("run")]
        assert len(active) <= 2
        if not active:
            break
        finish(active[0].run, value=0.1 * round_)
        with django_capture_on_commit_callbacks(execute=True):
            run_ended(active[0].run_id)
    sweep.refresh_from_db()
    assert sweep.status == "finished" and sweep.finished_at is not None
    assert sweep.trials.count() == 5 and len(sent) == 5
    assert sorted(sweep.trials.values_list("state", flat=True)) == ["complete"] * 5
    assert Run.objects.filter(tags__name=f"sweep:{sweep.pk}").count() == 5


def test_a_failed_trial_or_one_without_the_metric_counts_as_failed(alice, make_dataset, sent):
    sweep = make_sweep(alice, make_dataset(alice), budget=2)
    first, second = sweep.trials.select_related("run")
    finish(first.run, status=Run.Status.FAILED)
    finish(second.run, metric="val/other")
    advance_sweep(sweep.pk)
    assert sorted(sweep.trials.values_list("state", flat=True)) == ["fail", "fail"]
    assert Sweep.objects.get(pk=sweep.pk).status == "finished"


def test_a_grid_stops_at_its_size(alice, make_dataset, sent):
    space = {"cube.steps": {"type": "int", "low": 2, "high": 3}}
    sweep = make_sweep(alice, make_dataset(alice), search_space=space, method="grid", budget=10, parallelism=5)
    assert sweep.trials.count() == 2
    assert sorted(t.params["cube.steps"] for t in sweep.trials.all()) == [2, 3]


def test_it_stops_finishing_running_trials(alice, make_dataset, sent):
    sweep = make_sweep(alice, make_dataset(alice))
    first, second = sweep.trials.select_related("run")
    Run.objects.filter(pk=first.run_id).update(status=Run.Status.RUNNING)
    sweep = stop_sweep(sweep, "finish")
    assert sweep.status == "stopping"
    assert Run.objects.get(pk=second.run_id).status == "cancelled"
    running = Run.objects.get(pk=first.run_id)
    assert running.status == "running" and not running.cancel_requested
    finish(running)
    run_ended(running.pk)
    sweep.refresh_from_db()
    assert sweep.status == "stopped" and sweep.trials.count() == 2  # nothing more queued
    assert dict(sweep.trials.values_list("number", "state")) == {0: "complete", 1: "fail"}


def test_it_stops_cancelling_running_trials(alice, make_dataset, sent):
    sweep = make_sweep(alice, make_dataset(alice))
    first, second = sweep.trials.select_related("run")
    Run.objects.filter(pk=first.run_id).update(status=Run.Status.RUNNING)
    sweep = stop_sweep(sweep, "cancel")
    assert Run.objects.get(pk=first.run_id).cancel_requested
    assert Run.objects.get(pk=first.run_id).end_reason == f"stopped with sweep #{sweep.pk}"
    assert Run.objects.get(pk=second.run_id).status == "cancelled"
    Run.objects.filter(pk=first.run_id).update(status=Run.Status.CANCELLED)
    run_ended(first.run_id)
    sweep.refresh_from_db()
    assert sweep.status == "stopped" and set(sweep.trials.values_list("reason", flat=True)) == {"stopped"}


def test_pruning_sets_the_cancel_flag_and_the_trial_ends_pruned(alice, make_dataset, sent):
    sweep = make_sweep(alice, make_dataset(alice), parallelism=1, budget=4, pruner_startup_trials=2)
    now = 1.0
    for value in (0.8, 0.9):  # two complete trials with curves
        trial = sweep.trials.get(state="running")
        MetricPoint.objects.bulk_create([MetricPoint(run=trial.run, key="val/qa_cosine", step=s,
                                                     value=value - 0.1 * (2 - s), time=now) for s in (1, 2)])
        finish(trial.run, value=value)
        run_ended(trial.run_id)
    trial = sweep.trials.get(state="running")
    Run.objects.filter(pk=trial.run_id).update(status=Run.Status.RUNNING)
    assert not trial_evaluated(trial.run_id, 1, {"val/qa_cosine": 0.75, "val/loss": 1.0})  # above the median
    assert not Run.objects.get(pk=trial.run_id).cancel_requested
    assert trial_evaluated(trial.run_id, 2, {"val/qa_cosine": 0.1})
    run = Run.objects.get(pk=trial.run_id)
    assert run.cancel_requested and LogEntry.objects.filter(run=run, message__contains="pruned").exists()
    assert run.end_reason == "pruned"
    Run.objects.filter(pk=run.pk).update(status=Run.Status.CANCELLED)  # what the worker records
    run_ended(run.pk)
    trial.refresh_from_db()
    assert trial.state == "pruned" and trial.reason == "pruned" and trial.value is None
    assert sweep.trials.filter(state="running").count() == 1  # the next trial is queued


def test_a_run_outside_any_sweep_is_never_pruned(alice, make_dataset):
    run = Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice), status=Run.Status.RUNNING)
    assert not trial_evaluated(run.pk, 1, {"val/qa_cosine": 0.0})
    run_ended(run.pk)  # no sweep: nothing happens


def test_it_refuses_an_invalid_sweep_and_creates_nothing(alice, make_dataset, sent):
    with pytest.raises(SpaceError) as caught:
        make_sweep(alice, make_dataset(alice), search_space={"cube.stpes": {"type": "int", "low": 1, "high": 2}},
                   budget=0)
    assert caught.value.errors[0]["path"] == "budget"
    with pytest.raises(SpaceError):
        make_sweep(alice, make_dataset(alice), search_space={"cube.stpes": {"type": "int", "low": 1, "high": 2}})
    assert Sweep.objects.count() == 0 and Run.objects.count() == 0 and not sent


def test_the_bridge_stops_a_trial_when_the_pruner_says_so(alice, make_dataset, sent):
    from trainer.events import EvalEnd
    from worker.bridge import RunBridge

    sweep = make_sweep(alice, make_dataset(alice), parallelism=1, budget=4, pruner_startup_trials=2)
    for value in (0.8, 0.9):
        trial = sweep.trials.get(state="running")
        MetricPoint.objects.create(run=trial.run, key="val/qa_cosine", step=1, value=value, time=1.0)
        finish(trial.run, value=value)
        run_ended(trial.run_id)
    trial = sweep.trials.get(state="running")
    Run.objects.filter(pk=trial.run_id).update(status=Run.Status.RUNNING)
    bridge = RunBridge(trial.run_id, send=lambda *args: None)
    assert not bridge.should_stop()
    bridge.on_eval(EvalEnd(step=1, epoch=0, metrics={"val/qa_cosine": 0.2}))
    assert bridge.should_stop() and Run.objects.get(pk=trial.run_id).cancel_requested
    assert MetricPoint.objects.filter(run_id=trial.run_id, key="val/qa_cosine", step=1).exists()
