import math

import pytest
import torch

from trainer.cube import Cube
from trainer.events import Callback
from trainer.loop import split_rows, train
from trainer.checkpoint import load_checkpoint

from .helpers import make_config, make_vector_file


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_start(self, event):
        self.events.append(event)

    on_step = on_eval = on_checkpoint = on_end = on_log = on_start

    def of(self, kind):
        return [event for event in self.events if event.type == kind]


@pytest.fixture
def vectors(tmp_path):
    return make_vector_file(tmp_path / "pairs.safetensors", rows=192)


def test_it_trains_the_cube_past_the_identity_baseline(vectors):
    result = train(make_config(vectors, train={"epochs": 8, "batch_size": 32}))
    summary = result.summary
    assert result.status == "succeeded" and result.reason == "completed"
    assert summary["val/qa_cosine"] > summary["baseline/identity/val/qa_cosine"] + 0.03


def test_an_untrained_cube_scores_exactly_the_identity(vectors):
    recorder = Recorder()
    train(make_config(vectors, train={"epochs": 1, "batch_size": 16, "lr": 1e-12, "warmup_steps": 0}),
          callbacks=[recorder])
    metrics = recorder.of("eval")[0].metrics
    assert metrics["val/qa_cosine"] == pytest.approx(metrics["baseline/identity/val/qa_cosine"], abs=1e-4)


def test_events_carry_every_metric_key(vectors):
    recorder = Recorder()
    config = make_config(vectors, loss={"mse": {"weight": 0.5}})
    train(config, callbacks=[recorder])
    step = recorder.of("step")[0]
    assert {"train/loss", "train/loss/cosine", "train/loss/mse", "lr", "perf/samples_per_s"} <= set(step.metrics)
    evaluation = recorder.of("eval")[-1].metrics
    for name in ("qa_cosine", "recall@1", "recall@5", "mrr"):
        for prefix in ("val/", "baseline/identity/val/", "baseline/linear/val/"):
            assert math.isfinite(evaluation[prefix + name])
    assert [e.type for e in recorder.events][0] == "start" and recorder.events[-1].type == "end"
    assert all(event.time > 1.6e9 for event in recorder.events)


def test_the_split_is_disjoint_seeded_and_stable():
    train_a, val_a = split_rows(100, 0.1, seed=1)
    train_b, val_b = split_rows(100, 0.1, seed=1)
    assert torch.equal(val_a, val_b) and len(val_a) == 10
    assert not set(train_a.tolist()) & set(val_a.tolist())
    assert len(train_a) + len(val_a) == 100
    assert not torch.equal(split_rows(100, 0.1, seed=2)[1], val_a)


def test_resuming_continues_the_same_loss_curve(vectors, tmp_path):
    config = make_config(vectors, cube={"dropout": 0.2}, train={"epochs": 3, "batch_size": 16, "checkpoint_every": 5})
    full = Recorder()
    train(config, out_dir=tmp_path / "full", callbacks=[full])
    calls = {"n": 0}

    def stop_after_seven():
        calls["n"] += 1
        return calls["n"] > 7

    first = train(config, out_dir=tmp_path / "split", should_stop=stop_after_seven)
    assert first.status == "cancelled" and first.step == 7
    resumed = Recorder()
    train(config, out_dir=tmp_path / "split", callbacks=[resumed], resume=first.checkpoint)
    expected = {e.step: e.metrics["train/loss"] for e in full.of("step") if e.step > 7}
    got = {e.step: e.metrics["train/loss"] for e in resumed.of("step")}
    assert got.keys() == expected.keys()
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step


def test_cancel_saves_a_checkpoint_and_ends_cancelled(vectors, tmp_path):
    result = train(make_config(vectors), out_dir=tmp_path, should_stop=lambda: True)
    assert result.status == "cancelled"
    assert load_checkpoint(result.checkpoint).state["step"] == 0


def test_divergence_stops_and_keeps_the_last_good_checkpoint(vectors, tmp_path, monkeypatch):
    real_forward = Cube.forward
    calls = {"n": 0}

    def poisoned(self, x, return_trace=False):
        calls["n"] += self.training
        out = real_forward(self, x, return_trace)
        return out * float("nan") if self.training and calls["n"] > 12 else out

    monkeypatch.setattr(Cube, "forward", poisoned)
    config = make_config(vectors, train={"epochs": 3, "batch_size": 16, "checkpoint_every": 5})
    result = train(config, out_dir=tmp_path)
    assert result.status == "failed" and result.reason == "diverged at step 13"
    kept = load_checkpoint(result.checkpoint)
    assert kept.state["step"] == 10
    assert all(torch.isfinite(t).all() for t in kept.model.values())


def test_early_stopping_ends_a_flat_run(vectors):
    config = make_config(vectors, train={"epochs": 20, "batch_size": 16, "lr": 1e-12, "eval_every": 2,
                                         "early_stopping_patience": 2})
    result = train(config)
    assert result.status == "succeeded" and result.reason.startswith("early stopping")
    assert result.step < 20 * 10


def test_bf16_autocast_trains_on_cpu(vectors):
    result = train(make_config(vectors, train={"epochs": 1, "batch_size": 16, "precision": "bf16"}))
    assert result.status == "succeeded" and math.isfinite(result.summary["val/qa_cosine"])


def test_a_mismatched_cube_fails_before_training(tmp_path):
    data = make_vector_file(tmp_path / "pairs.safetensors", rows=32, dim=24)
    with pytest.raises(Exception) as caught:
        train(make_config(data))  # lattice 2×2×4 = 16 cells, 24-D vectors
    assert "16 cells cannot hold 24-D vectors" in str(caught.value)


class FakeClock:
    """Ten seconds pass at every reading: a time budget is reached after a known number of readings."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 10.0
        return self.now


def test_a_time_budget_ends_the_run_succeeded_with_fresh_metrics_and_a_checkpoint(vectors, tmp_path, monkeypatch):
    import trainer.loop

    monkeypatch.setattr(trainer.loop, "time", FakeClock())
    config = make_config(vectors, train={"epochs": 50, "batch_size": 16, "eval_every": 1000, "max_minutes": 1})
    recorder = Recorder()
    result = train(config, out_dir=tmp_path, callbacks=[recorder])

    total = recorder.of("start")[0].total_steps
    assert result.status == "succeeded" and 0 < result.step < total
    assert result.reason == f"time budget of 1 min reached at step {result.step}"
    # Validation ran at the stopping step (not only at a scheduled eval), and the run saved there once.
    assert [event.step for event in recorder.of("eval")] == [result.step]
    assert [event.step for event in recorder.of("checkpoint")] == [result.step]
    spent = load_checkpoint(result.checkpoint).state["run"]["train_seconds"]
    assert spent >= 60

    # The budget counts across resumes: a resumed run with the budget spent stops after one step.
    resumed = train(config, out_dir=tmp_path / "again", resume=result.checkpoint)
    assert resumed.status == "succeeded" and resumed.step == result.step + 1


def test_without_a_time_budget_the_run_completes(vectors, monkeypatch):
    import trainer.loop

    monkeypatch.setattr(trainer.loop, "time", FakeClock())
    result = train(make_config(vectors, train={"epochs": 2, "batch_size": 16}))
    assert result.status == "succeeded" and result.reason == "completed"


def test_a_cube_that_cannot_fit_the_teacher_fails_before_any_text_is_encoded(tmp_path, tiny_teacher_dirs, monkeypatch):
    import trainer.loop

    def must_not_load(*args, **kwargs):
        raise AssertionError("the data were loaded (and the teachers run) before the dimension check")

    monkeypatch.setattr(trainer.loop, "load_pairs", must_not_load)
    corpus = tmp_path / "faq.jsonl"
    corpus.write_text('{"question": "a?", "answer": "b"}\n' * 8, encoding="utf-8")
    config = make_config(corpus, cube={"lattice": [2, 2, 5]},
                         teachers=[{"name": "tiny", "path": tiny_teacher_dirs["bert"], "device": "cpu"}])
    with pytest.raises(Exception, match="20 cells cannot hold 32-D vectors"):
        train(config)


def test_resuming_on_other_data_or_another_cube_shape_is_refused_with_what_differs(vectors, tmp_path):
    config = make_config(vectors, train={"epochs": 1, "batch_size": 16})
    checkpoint = train(config, out_dir=tmp_path / "first").checkpoint

    other_data = make_vector_file(tmp_path / "other.safetensors", rows=192, seed=5)
    with pytest.raises(ValueError, match=r"cannot resume from .*: its data had sha256 \w+…, this run's data"):
        train(make_config(other_data, train={"epochs": 2, "batch_size": 16}), resume=checkpoint)

    wider = make_config(vectors, cube={"state_dim": 12}, train={"epochs": 2, "batch_size": 16})
    with pytest.raises(ValueError, match=r"`cube.state_dim` was 8, now 12"):
        train(wider, resume=checkpoint)

    # What does not shape the weights may change: more epochs, another learning rate, more steps.
    longer = make_config(vectors, cube={"steps": 3}, train={"epochs": 2, "batch_size": 16, "lr": 0.005})
    assert train(longer, resume=checkpoint).status == "succeeded"
