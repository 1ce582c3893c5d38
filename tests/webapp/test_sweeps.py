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
from webapp.sweeps.space import checked_values

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
LATTICES = [[8, 8, 6], [8, 8, 3], [4, 4, 24]]  # each holds MiniLM's 384 dimensions exactly
LEARNED = BASE.replace("steps: 2}", "steps: 2, projection: learned}")
# Each value is valid alone (with the base's other keys); 8×8×5 with `exact` is not.
COMBINED = {"cube.lattice": {"type": "categorical", "choices": [[8, 8, 6], [8, 8, 5]]},
            "cube.projection": {"type": "categorical", "choices": ["learned", "exact"]}}


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
    assert errors[0]["message"].startswith("0 is not valid: Input should be greater than or equal to 1")


def test_it_names_a_bad_choice(db):
    errors = errors_of({"cube.cell": {"type": "categorical", "choices": ["mlp", "transformer"]}})
    assert errors[0]["path"] == "cube.cell" and "transformer" in errors[0]["message"]


def test_a_choice_may_be_a_lattice(db):
    space = optimiser.parse_space("cube.lattice: {type: categorical, choices: [[8, 8, 6], [4, 4, 24]]}\n")
    optimiser.validate_space(BASE, space)
    assert space["cube.lattice"]["choices"] == [[8, 8, 6], [4, 4, 24]]
    from_python = optimiser.parse_space({"cube.lattice": {"type": "categorical", "choices": [(8, 8, 6)]}})
    assert from_python["cube.lattice"]["choices"] == [[8, 8, 6]]  # a tuple is stored as the list it means


def test_it_refuses_a_choice_listed_twice():
    with pytest.raises(SpaceError) as caught:
        optimiser.parse_space({"cube.lattice": {"type": "categorical", "choices": [[8, 8, 6], (8, 8, 6)]}})
    assert caught.value.errors == [{"path": "cube.lattice", "message": "the choice [8, 8, 6] is listed twice"}]


def test_it_names_the_values_of_a_range_that_the_schema_refuses(db):
    errors = errors_of({"cube.neighbourhood": {"type": "int", "low": 6, "high": 26}})
    assert errors == [{"path": "cube.neighbourhood",
                       "message": "7 is not valid: Input should be 6 or 26 (nor are 18 more of the 21 values checked: "
                                  "8, 9, 10, 11, 12, …)"}]
    optimiser.validate_space(BASE, optimiser.parse_space({"cube.neighbourhood": {"type": "int", "low": 6,
                                                                                  "high": 26, "step": 20}}))


def test_a_long_range_is_checked_on_a_sample(db):
    spec = optimiser.parse_space({"cube.steps": {"type": "int", "low": 1, "high": 100_000}})["cube.steps"]
    assert len(checked_values(spec)) <= 102 and {1, 100_000} <= set(checked_values(spec))
    errors = errors_of({"cube.steps": {"type": "int", "low": 1, "high": 100_000}})
    assert "is not valid: Input should be less than or equal to 1000" in errors[0]["message"]
    assert "of the 100 values checked" in errors[0]["message"]


def test_it_refuses_a_lattice_choice_that_cannot_hold_the_teachers_dimension(db):
    space = {"cube.lattice": {"type": "categorical", "choices": [[8, 8, 6], [8, 8, 12], [4, 4, 24]]}}
    errors = errors_of(space)
    assert errors == [{"path": "cube.lattice", "message": "[8, 8, 12] is not valid: lattice 8×8×12 = 768 cells "
                       "cannot hold 384-D vectors exactly: use 8×8×6 or 8×4×12, or set `cube.projection: learned`"}]
    optimiser.validate_space(LEARNED, optimiser.parse_space(space))  # a learned projection holds any dimension


def test_it_sweeps_one_side_of_the_lattice(db):
    errors = errors_of({"cube.lattice.2": {"type": "int", "low": 1, "high": 6}})
    assert errors[0]["path"] == "cube.lattice.2"
    assert errors[0]["message"].startswith("4 is not valid: cube.lattice: lattice 8×8×4 = 256 cells cannot hold")
    assert errors[0]["message"].endswith("(nor is 1 more of the 6 values checked: 5)")
    optimiser.validate_space(BASE, optimiser.parse_space({"cube.lattice.2": {"type": "categorical",
                                                                              "choices": [3, 6]}}))
    assert optimiser.apply_params(BASE, {"cube.lattice.2": 3})["cube"]["lattice"] == [8, 8, 3]
    outside = errors_of({"cube.lattice.3": {"type": "int", "low": 1, "high": 2}})
    assert outside == [{"path": "cube.lattice.3", "message": "`cube.lattice` is a list of 3 items: `3` must be an "
                                                             "index from 0 to 2"}]


def test_a_lattice_written_as_text_is_refused_with_a_hint(db):
    errors = errors_of({"cube.lattice": {"type": "categorical", "choices": [[8, 8, 6], "8x8x3"]}})
    assert len(errors) == 1 and errors[0]["message"].startswith('"8x8x3" is not valid: Input should be a valid')
    assert errors[0]["message"].endswith("; write a lattice as a list, e.g. [8, 8, 3]")


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


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_lattice_choices_come_back_as_lists_in_each_method(db, method):
    space = optimiser.parse_space({"cube.lattice": {"type": "categorical", "choices": LATTICES},
                                   "cube.steps": {"type": "int", "low": 2, "high": 3}})
    past = []
    for number in range(6):
        params, attrs = optimiser.suggest(method, space, "maximize", 1, past)
        assert params["cube.lattice"] in LATTICES
        config = parse_config(optimiser.apply_params(BASE, params) | {"data": {"path": "x.jsonl"}})
        assert list(config.cube.lattice) == params["cube.lattice"]
        past.append(PastTrial(number, params, "complete", value=float(number), system_attrs=attrs))
    if method == "grid":
        assert len({(tuple(t.params["cube.lattice"]), t.params["cube.steps"]) for t in past}) == 6
        assert optimiser.grid_exhausted(space, past)
    assert set(optimiser.importances(space, "maximize", past)) == {"cube.lattice", "cube.steps"}


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


def test_a_trial_whose_combination_is_invalid_fails_alone_and_the_sweep_goes_on(alice, make_dataset, sent):
    sweep = make_sweep(alice, make_dataset(alice), base_config_yaml=LEARNED, search_space=COMBINED,
                       method="grid", budget=4, parallelism=2)
    for _ in range(4):
        active = list(sweep.trials.filter(state="running").select_related("run"))
        if not active:
            break
        finish(active[0].run)
        run_ended(active[0].run_id)
    sweep.refresh_from_db()
    assert sweep.status == "finished" and sweep.error == ""
    assert sorted(sweep.trials.values_list("state", flat=True)) == ["complete"] * 3 + ["fail"]
    failed = sweep.trials.get(state="fail")
    assert failed.params == {"cube.lattice": [8, 8, 5], "cube.projection": "exact"} and failed.run is None
    assert failed.reason.startswith("invalid config (lattice=8×8×5, projection=exact): cube.lattice: lattice "
                                    "8×8×5 = 320 cells cannot hold 384-D vectors exactly")
    assert Run.objects.filter(tags__name=sweep.tag).count() == 3


def test_a_sweep_stops_after_too_many_invalid_trials_in_a_row(alice, make_dataset, sent, monkeypatch):
    monkeypatch.setattr("webapp.sweeps.actions.MAX_QUEUE_FAILURES_IN_A_ROW", 1)
    sweep = make_sweep(alice, make_dataset(alice), base_config_yaml=LEARNED, search_space=COMBINED,
                       method="grid", budget=4, parallelism=4)
    last = sweep.trials.order_by("number").last()
    assert last.state == "fail" and last.run is None  # nothing queued after it
    assert sweep.status == "stopping" and sweep.error.startswith("1 trials in a row had an invalid config; the last: "
                                                                 "invalid config (lattice=8×8×5, projection=exact)")


def test_a_sweep_whose_base_config_no_longer_queues_stops_with_the_reason(alice, make_dataset, sent, monkeypatch):
    from webapp.runs.preflight import PreflightRejected

    def gone(*args, **kwargs):
        raise PreflightRejected([{"path": "teachers[0]", "message": "teacher `minilm` cannot be loaded"}])

    monkeypatch.setattr("webapp.runs.actions.check_submit", gone)
    monkeypatch.setattr("webapp.sweeps.actions.check_submit", gone)
    sweep = make_sweep(alice, make_dataset(alice))
    assert sweep.trials.count() == 0  # no trial is spent on it
    assert sweep.status == "stopped"
    assert sweep.error == "trial 0 could not be queued: teachers[0]: teacher `minilm` cannot be loaded"


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
