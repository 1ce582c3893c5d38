"""End to end from text: real teachers loaded from disk, the cache, every loss term, distillation."""

import json

import pytest

from trainer.config import parse_config
from trainer.events import Callback
from trainer.loop import train

from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "data" / "demo_dialogue.jsonl"


class Steps(Callback):
    def __init__(self):
        self.steps, self.evals, self.start = [], [], None

    def on_start(self, event):
        self.start = event

    def on_step(self, event):
        self.steps.append(event.metrics)

    def on_eval(self, event):
        self.evals.append(event.metrics)


@pytest.fixture
def dialogue_file(tmp_path):
    lines = DEMO.read_text(encoding="utf-8").splitlines()[:48]
    path = tmp_path / "dialogue.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def three_teacher_config(data, dirs, **distill):
    return parse_config({
        "task": "dialogue", "seed": 0,
        "cube": {"lattice": [2, 2, 8], "state_dim": 8, "hidden_dim": 16, "steps": 2},  # 32 cells = bert's 32-D
        "train": {"epochs": 4, "batch_size": 12, "lr": 0.01},
        "data": {"path": str(data)},
        "teachers": [{"name": "bert", "path": dirs["bert"]},
                     {"name": "roberta", "path": dirs["roberta"], "weight": 2.0},
                     {"name": "llama", "path": dirs["llama"], "pooling": "last", "dtype": "bfloat16"}],
        "loss": {"mse": {"weight": 1.0}, "infonce": {"weight": 0.2}, "triplet": {"weight": 0.5, "negatives": 3}},
        "distill": {"regression_weight": 1.0, "relational_weight": 0.5, **distill},
    })


def test_three_teachers_of_different_sizes_train_together(dialogue_file, tiny_teacher_dirs, tmp_path):
    recorder = Steps()
    config = three_teacher_config(dialogue_file, tiny_teacher_dirs, teacher_weighting="agreement")
    result = train(config, out_dir=tmp_path / "run", callbacks=[recorder], cache_dir=tmp_path / "cache")
    assert result.status == "succeeded"
    terms = set(recorder.steps[0])
    for term in ("cosine", "mse", "infonce", "triplet", "distill_regression", "distill_relational"):
        assert f"train/loss/{term}" in terms, term
    def mean_loss(steps):
        return sum(step["train/loss"] for step in steps) / len(steps)

    assert mean_loss(recorder.steps[-3:]) < mean_loss(recorder.steps[:3])  # the stack as a whole is minimised
    assert {"val/agreement/roberta", "val/agreement/llama"} <= set(recorder.evals[-1])
    weights = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert weights["step"] == result.step
    # Agreement weighting really re-weighted the teachers: the saved weights moved off the prior
    # (bert 1, roberta 2, llama 1 → 0.25, 0.5, 0.25) and still sum to 1.
    from trainer.checkpoint import load_checkpoint

    saved = load_checkpoint(result.checkpoint).state["run"]["teacher_weights"]
    prior = {"bert": 0.25, "roberta": 0.5, "llama": 0.25}
    assert set(saved) == set(prior) and sum(saved.values()) == pytest.approx(1.0)
    assert any(abs(saved[name] - prior[name]) > 1e-3 for name in prior), saved


def test_a_second_run_reads_the_cache_and_loads_no_teacher(dialogue_file, tiny_teacher_dirs, tmp_path, monkeypatch):
    config = three_teacher_config(dialogue_file, tiny_teacher_dirs)
    config.train.epochs = 1
    train(config, cache_dir=tmp_path / "cache")
    import trainer.teachers as teachers

    def refuse(*args, **kwargs):
        raise AssertionError("a teacher was loaded although every embedding was cached")

    monkeypatch.setattr(teachers, "get_teacher", refuse)
    monkeypatch.setattr(teachers, "load_model", refuse)
    assert train(config, cache_dir=tmp_path / "cache").status == "succeeded"


def test_the_primary_space_can_be_another_teacher(dialogue_file, tiny_teacher_dirs, tmp_path):
    recorder = Steps()
    config = three_teacher_config(dialogue_file, tiny_teacher_dirs, eval_teacher="roberta")
    config.train.epochs = 1
    train(config, callbacks=[recorder], cache_dir=tmp_path / "cache")
    assert recorder.start.parameters > 0 and recorder.evals
    assert "baseline/identity/val/qa_cosine" in recorder.evals[-1]
