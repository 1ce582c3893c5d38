"""worker.tasks.run_training with the trainer replaced by a scripted fake (no torch here)."""

import sys
import types
from pathlib import Path

import pytest
import yaml

from trainer.events import CheckpointSaved, EvalEnd, RunEnd, RunStart, StepEnd
from webapp.runs.models import Checkpoint, MetricPoint, Run
from worker.tasks import run_training

# run_training closes its database connection when it ends, as a long-lived worker must: on
# PostgreSQL that would end a test wrapped in one transaction, so each test commits for real.
pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = {"task": "dialogue", "seed": 1, "cube": {"lattice": [8, 8, 6]}, "train": {"epochs": 1, "batch_size": 8},
          "teachers": [{"name": "minilm"}]}


@pytest.fixture
def messages(monkeypatch):
    sent = []
    monkeypatch.setattr("webapp.runs.live.send_to_run", lambda run_id, message: sent.append(message) or True)
    return sent


@pytest.fixture
def fake_trainer(monkeypatch):
    """Installs trainer.loop.train = the given function, without importing the real loop."""

    def install(train):
        monkeypatch.setitem(sys.modules, "trainer.loop", types.SimpleNamespace(train=train))

    return install


@pytest.fixture
def queued_run(alice, make_dataset, messages):
    from webapp.runs.actions import queue_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
        return queue_run(alice, "task", make_dataset(alice), config=CONFIG)


def scripted_train(config, out_dir, callbacks=(), should_stop=None, resume=None, cache_dir=None):
    scripted_train.seen = {"config": config, "out_dir": Path(out_dir), "cache_dir": cache_dir}
    (bridge,) = callbacks
    bridge.on_start(RunStart(config=config.to_dict(), device="cpu", total_steps=3, start_step=0, train_rows=20,
                             val_rows=4, parameters=100))
    for step in (1, 2, 3):
        bridge.on_step(StepEnd(step=step, epoch=0, metrics={"train/loss": 1.0 / step}))
    bridge.on_eval(EvalEnd(step=3, epoch=0, metrics={"val/mrr": 0.4}))
    path = Path(out_dir) / "step-3.safetensors"
    path.write_bytes(b"x" * 10)
    bridge.on_checkpoint(CheckpointSaved(step=3, path=str(path), size_bytes=10))
    end = RunEnd(status="succeeded", reason="completed", step=3, summary={"val/mrr": 0.4}, checkpoint=str(path))
    bridge.on_end(end)
    return end


def test_it_trains_and_records_a_run(queued_run, fake_trainer, messages, settings):
    fake_trainer(scripted_train)
    assert run_training(queued_run.pk) == "succeeded"
    run = Run.objects.get(pk=queued_run.pk)
    assert run.status == "succeeded" and run.started_at and run.finished_at and run.error == ""
    assert run.end_reason == "completed"  # the trainer's reason, kept on the run
    assert run.worker_host and run.device == "cpu" and run.package_versions["python"]
    assert run.summary["val/mrr"] == 0.4 and run.last_step == 3
    assert run.teachers[0]["name"] == "minilm" and run.teachers[0]["identity"].startswith("minilm@")
    assert MetricPoint.objects.filter(run=run, key="train/loss").count() == 3
    assert Checkpoint.objects.get(run=run).path == f"run-{run.pk}/step-3.safetensors"
    seen = scripted_train.seen
    assert seen["config"].data.path == str(Path(settings.MEDIA_ROOT) / run.dataset.file.name)
    assert seen["out_dir"] == run.out_dir and seen["cache_dir"] == Path(settings.CACHE_DIR)
    snapshot = yaml.safe_load((run.out_dir / "config.yaml").read_text())
    assert snapshot["data"]["path"] == seen["config"].data.path
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses == ["running", "succeeded"]
    assert [m["type"] for m in messages] == ["status", "step", "step", "eval", "checkpoint", "status"]


def test_it_records_an_exception_as_a_readable_failure(queued_run, fake_trainer):
    def broken(config, out_dir, callbacks=(), **kwargs):
        raise RuntimeError("teacher `minilm` could not be loaded")

    fake_trainer(broken)
    assert run_training(queued_run.pk) == "failed"
    run = Run.objects.get(pk=queued_run.pk)
    assert run.status == "failed" and run.finished_at
    assert run.error.startswith("RuntimeError: teacher `minilm` could not be loaded (at test_run_training_task.py:")


def test_it_ends_cancelled_when_should_stop_says_so(queued_run, fake_trainer):
    def until_stopped(config, out_dir, callbacks=(), should_stop=None, **kwargs):
        Run.objects.filter(pk=queued_run.pk).update(cancel_requested=True)
        while not should_stop():
            pass
        return RunEnd(status="cancelled", reason="cancelled at step 0", step=0, summary={})

    fake_trainer(until_stopped)
    run_training(queued_run.pk)
    run = Run.objects.get(pk=queued_run.pk)
    assert run.status == "cancelled" and run.end_reason == "cancelled at step 0"


def test_a_second_delivery_does_nothing(queued_run, fake_trainer):
    calls = []
    fake_trainer(lambda *args, **kwargs: calls.append(args))
    Run.objects.filter(pk=queued_run.pk).update(status=Run.Status.RUNNING)
    assert run_training(queued_run.pk) is None
    assert calls == [] and Run.objects.get(pk=queued_run.pk).status == "running"


def test_a_run_cancelled_while_queued_never_starts(queued_run, fake_trainer):
    from webapp.runs.actions import cancel_run

    calls = []
    fake_trainer(lambda *args, **kwargs: calls.append(args))
    cancel_run(queued_run)
    assert run_training(queued_run.pk) is None and calls == []
    assert Run.objects.get(pk=queued_run.pk).status == "cancelled"


def test_a_worker_shutdown_ends_the_run_interrupted(queued_run, fake_trainer):
    from worker.tasks import worker_stopping

    def until_stopped(config, out_dir, callbacks=(), should_stop=None, **kwargs):
        worker_stopping.set()  # what SIGTERM to the worker does
        assert should_stop() is True
        return RunEnd(status="cancelled", reason="cancelled at step 0", step=0, summary={})

    fake_trainer(until_stopped)
    try:
        assert run_training(queued_run.pk) == "interrupted"
    finally:
        worker_stopping.clear()
    run = Run.objects.get(pk=queued_run.pk)
    assert run.status == "interrupted" and "worker shut down" in run.error
