"""A sweep for real: Redis, a Celery worker process, Daphne and the real trainer.

Six grid trials over two keys run on the CPU queue, two queued at once, with a tiny cube and a
tiny offline teacher: `train.lr` (1e-6 or 1e-2) and `train.log_every`, which leaves the values
bit-identical, so equal trials tie instead of pruning each other on float noise. The median
pruner (2 startup trials, no warm-up) sees every evaluation (`train.eval_every: 1`) and stops
the hopeless trials through the trainer's cooperative stop. (On this tiny data the cube starts
near the identity, which already scores well, and lr 1e-2 overshoots: here 1e-2 is the
hopeless rate. The test does not assume which one is.)
"""

import time

import pytest

from tests.conftest import api_call, dialogue_jsonl

pytestmark = pytest.mark.slow

FINISHED_SWEEP = {"finished", "stopped"}
BASE = """
task: dialogue
seed: 0
cube: {lattice: [2, 2, 8], steps: 2, hidden_dim: 16}
train: {epochs: 2, batch_size: 8, device: cpu, eval_every: 1, checkpoint_every: 0}
teachers: [{name: tiny-bert, path: "%s", device: cpu}]
"""
SPACE = {"train.lr": {"type": "float", "low": 1e-6, "high": 1e-2, "values": [1e-6, 1e-2, 1e-6]},
         "train.log_every": {"type": "categorical", "choices": [1, 2]}}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    from tests.trainer.tiny_models import build_tiny_teachers

    return build_tiny_teachers(tmp_path_factory.mktemp("teachers"))["bert"]


def grid_seed() -> int:
    """A seed whose first two grid trials use different learning rates (the sampler is
    deterministic per seed): the median of a learning and a hopeless trial lies between them,
    so whichever rate is worse on this data, a later trial with it is pruned."""
    from webapp.sweeps import optimiser

    space = optimiser.parse_space(SPACE)
    for seed in range(200):
        past = []
        for number in range(2):
            params, attrs = optimiser.suggest("grid", space, "maximize", seed, past)
            past.append(optimiser.PastTrial(number, params, "running", system_attrs=attrs))
        if past[0].params["train.lr"] != past[1].params["train.lr"]:
            return seed
    raise AssertionError("no seed starts with both learning rates")


def test_a_sweep_runs_to_completion_with_pruning(daphne_server, celery_worker, platform_user, tiny_bert):
    token = platform_user.token
    status, dataset = api_call(daphne_server, "/api/v1/datasets/", token, "POST",
                               fields={"name": "faq", "kind": "dialogue"},
                               files={"file": ("faq.jsonl", dialogue_jsonl(24))})
    assert status == 201, dataset
    started = time.monotonic()
    status, sweep = api_call(daphne_server, "/api/v1/sweeps/", token, "POST", json_body={
        "name": "e2e sweep", "dataset": dataset["id"], "base_config_yaml": BASE % tiny_bert, "search_space": SPACE,
        "method": "grid", "metric": "val/qa_cosine", "direction": "maximize", "budget": 6, "parallelism": 2,
        "queue": "cpu", "pruning": True, "pruner_startup_trials": 2, "pruner_warmup_steps": 0,
        "seed": grid_seed()})
    assert status == 201, sweep
    assert sweep["counts"]["running"] == 2  # the parallelism limit

    deadline = time.monotonic() + 240
    most_active = 0
    while time.monotonic() < deadline:
        status, detail = api_call(daphne_server, f"/api/v1/sweeps/{sweep['id']}/", token)
        assert status == 200
        most_active = max(most_active, detail["counts"]["running"])
        if detail["status"] in FINISHED_SWEEP:
            break
        time.sleep(1)
    else:
        raise TimeoutError(f"the sweep did not finish: {detail['counts']}, {detail['trials']}")
    elapsed = time.monotonic() - started

    assert detail["status"] == "finished", detail
    trials = detail["trials"]
    assert len(trials) == 6 and most_active <= 2
    states = [trial["state"] for trial in trials]
    assert states.count("complete") >= 2 and states.count("pruned") >= 1 and "fail" not in states, trials
    assert {(t["params"]["train.lr"], t["params"]["train.log_every"]) for t in trials} == {
        (1e-6, 1), (1e-6, 2), (1e-2, 1), (1e-2, 2)}  # the grid's distinct points, all visited
    best = trials[0]
    assert best["rank"] == 1 and detail["best"]["run"] == best["run"]
    pruned_rates = {t["params"]["train.lr"] for t in trials if t["state"] == "pruned"}
    assert len(pruned_rates) == 1 and best["params"]["train.lr"] not in pruned_rates  # the worse rate only
    assert [p["number"] for p in detail["history"]] == sorted(p["number"] for p in detail["history"])

    for trial in trials:
        status, run = api_call(daphne_server, f"/api/v1/runs/{trial['run']}/", token)
        assert f"sweep:{sweep['id']}" in run["tags"] and run["config"]["train"]["lr"] == trial["params"]["train.lr"]
        if trial["state"] == "pruned":
            assert run["status"] == "cancelled" and trial["reason"] == "pruned" and run["cancel_requested"]
            assert run["end_reason"] == "pruned"
            status, logs = api_call(daphne_server, f"/api/v1/runs/{trial['run']}/logs/", token)
            entries = logs["results"] if isinstance(logs, dict) and "results" in logs else logs
            assert any("pruned by sweep" in entry["message"] for entry in entries), entries
            assert run["last_step"] < run["total_steps"]  # stopped early
        else:
            assert run["status"] == "succeeded" and isinstance(run["summary"]["val/qa_cosine"], float)
            assert run["end_reason"] == "completed"
    print(f"\nsweep of 6 trials finished in {elapsed:.1f} s; states {states}")
