"""A worker that comes back after a freeze, once a newer attempt owns its run, writes nothing.

Fast: the database and the bridge only. The freeze is simulated by moving the run to attempt 2
(what the reaper and the next worker's claim do) while attempt 1's bridge is still alive.
"""

import sys
import threading
import types
from pathlib import Path

import pytest

from trainer.events import CheckpointSaved, LogMessage, RunEnd, StepEnd
from webapp.runs.models import Checkpoint, LogEntry, MetricPoint, Run
from webapp.runs.reliability import LeaseLost, claim_run
from worker.bridge import RunBridge
from worker.tasks import LeaseGuard, attempt_dir, run_training

CONFIG = {"task": "dialogue", "seed": 1, "cube": {"lattice": [8, 8, 6]}, "train": {"epochs": 1, "batch_size": 8},
          "teachers": [{"name": "minilm"}]}


@pytest.fixture(autouse=True)
def _storage(isolated_storage):
    """Files under a tmp dir; the in-memory channel layer takes the status messages."""


@pytest.fixture
def run(alice, make_dataset):
    run = Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice), config={"seed": 1})
    assert claim_run(run.pk) == 1
    return run


def taken_over(run) -> None:
    """The reaper re-queued the run and another worker claimed it: attempt 2 owns it now."""
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED)
    assert claim_run(run.pk) == 2


def stale_bridge(run) -> RunBridge:
    heartbeat = types.SimpleNamespace(lost=threading.Event())  # its beats never got through
    guard = LeaseGuard(run.pk, 1, heartbeat, check_interval=0)
    return RunBridge(run.pk, send=lambda *args: None, lease_check=guard)


def checkpoint_event(run, step: int) -> CheckpointSaved:
    return CheckpointSaved(step=step, path=str(Path(run.out_dir) / f"step-{step}"), size_bytes=1)


def test_it_records_checkpoints_and_logs_while_it_holds_the_lease(run):
    bridge = stale_bridge(run)
    bridge.on_checkpoint(checkpoint_event(run, 4))
    bridge.on_log(LogMessage("info", "still mine"))
    assert bridge.should_stop() is False
    assert Checkpoint.objects.get(run=run).step == 4 and LogEntry.objects.get(run=run).message == "still mine"


def test_a_stale_attempt_cannot_record_a_checkpoint(run):
    bridge = stale_bridge(run)
    taken_over(run)
    with pytest.raises(LeaseLost):
        bridge.on_checkpoint(checkpoint_event(run, 20))
    assert not Checkpoint.objects.filter(run=run).exists()  # attempt 2 can never resume from it


def test_a_stale_attempt_cannot_flush_its_buffered_points(run):
    bridge = stale_bridge(run)
    bridge.on_step(StepEnd(step=1, epoch=0, metrics={"train/loss": 1.0}))  # buffered, not yet written
    taken_over(run)
    with pytest.raises(LeaseLost):
        bridge.close()
    assert not MetricPoint.objects.filter(run=run).exists()


def test_a_stale_attempt_cannot_write_a_log_line(run):
    bridge = stale_bridge(run)
    taken_over(run)
    with pytest.raises(LeaseLost):
        bridge.on_log(LogMessage("info", "resuming from step 10"))
    assert not LogEntry.objects.filter(run=run).exists()


def test_should_stop_says_stop_as_soon_as_the_lease_is_known_lost(run):
    bridge = stale_bridge(run)
    assert bridge.should_stop() is False
    taken_over(run)
    assert bridge.should_stop() is True


def test_should_stop_trusts_the_heartbeats_verdict_without_asking_the_database(run):
    heartbeat = types.SimpleNamespace(lost=threading.Event())
    bridge = RunBridge(run.pk, send=lambda *args: None, stop_check_interval=3600,
                       lease_check=LeaseGuard(run.pk, 1, heartbeat, check_interval=3600))
    assert bridge.should_stop() is False
    heartbeat.lost.set()  # a beat matched no row
    assert bridge.should_stop() is True


def test_each_resumed_attempt_writes_into_a_folder_of_its_own(run):
    assert attempt_dir(run, 1) == run.out_dir
    assert attempt_dir(run, 2) == run.out_dir / "attempt-2" != attempt_dir(run, 3)


@pytest.mark.django_db(transaction=True)  # run_training closes the connection, as a worker does
def test_run_training_stops_a_stale_attempt_and_records_nothing(alice, make_dataset, monkeypatch):
    """The whole task: the trainer is frozen past the timeout, the run is taken over, and the
    trainer's next should_stop() stops it; its final checkpoint and its end are refused."""
    from webapp.runs.actions import queue_run

    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: None)
    monkeypatch.setattr("webapp.runs.live.send_to_run", lambda *args: True)
    run = queue_run(alice, "task", make_dataset(alice), config=CONFIG)
    seen = {}

    def frozen_then_back(config, out_dir, callbacks=(), should_stop=None, **kwargs):
        (bridge,) = callbacks
        bridge.on_step(StepEnd(step=1, epoch=0, metrics={"train/loss": 1.0}))
        taken_over(run)
        import time

        time.sleep(0.6)  # past the guard's check interval, as any freeze past the timeout is
        seen["stopped"] = should_stop()
        seen["out_dir"] = Path(out_dir)
        with pytest.raises(LeaseLost):  # the trainer's checkpoint on the way out
            bridge.on_checkpoint(CheckpointSaved(step=1, path=str(Path(out_dir) / "step-1"), size_bytes=1))
        return RunEnd(status="cancelled", reason="cancelled at step 1", step=1, summary={"val/mrr": 0.1})

    monkeypatch.setitem(sys.modules, "trainer.loop", types.SimpleNamespace(train=frozen_then_back))
    assert run_training(run.pk) is None
    assert seen == {"stopped": True, "out_dir": run.out_dir}
    run.refresh_from_db()
    assert run.status == "running" and run.attempt == 2 and run.summary == {} and run.end_reason == ""
    assert not Checkpoint.objects.filter(run=run).exists() and not MetricPoint.objects.filter(run=run).exists()
