"""The bridge: trainer events -> batched rows and coalesced channel messages."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trainer.events import CheckpointSaved, EvalEnd, LogMessage, RunEnd, RunStart, StepEnd
from webapp.runs.models import Checkpoint, LogEntry, MetricPoint, Run
from worker.bridge import RunBridge


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def run(alice, make_dataset):
    return Run.objects.create(name="b", owner=alice, dataset=make_dataset(alice), status=Run.Status.RUNNING)


def steps(n, start=1):
    return [StepEnd(step=s, epoch=0, metrics={"train/loss": 1 / s, "lr": 0.001, "perf/samples_per_s": 80.0},
                    time=2000.0 + s) for s in range(start, start + n)]


def feed(bridge, clock, events, dt=0.01):
    for event in events:
        clock.now += dt
        bridge.on_step(event)


def test_it_writes_steps_in_far_fewer_inserts(run):
    clock, sent = FakeClock(), []
    bridge = RunBridge(run.pk, clock=clock, send=lambda *a: sent.append(a))
    with CaptureQueriesContext(connection) as queries:
        feed(bridge, clock, steps(100))  # 100 steps/s for one second
        bridge.on_end(RunEnd(status="succeeded", reason="completed", step=100, summary={"val/mrr": 0.7}))
    inserts = [q for q in queries.captured_queries  # INSERT OR IGNORE (SQLite) / ON CONFLICT DO NOTHING
               if q["sql"].startswith("INSERT") and 'INTO "runs_metricpoint"' in q["sql"]]
    assert MetricPoint.objects.filter(run=run).count() == 300
    assert 1 <= len(inserts) <= 6  # one per ~0.25 s flush, not one per point
    run.refresh_from_db()
    assert run.last_step == 100 and run.summary["train/loss"] == pytest.approx(0.01) and run.summary["val/mrr"] == 0.7


def test_it_flushes_at_the_point_limit(run):
    clock = FakeClock()
    bridge = RunBridge(run.pk, clock=clock, max_points=30, send=lambda *a: None)
    feed(bridge, clock, steps(20), dt=0.0)  # time stands still: only the size limit flushes
    assert bridge.flushes == 2 and MetricPoint.objects.filter(run=run).count() == 60  # 3 keys × 20 steps


def test_it_is_idempotent_when_events_are_replayed(run):
    for _ in range(2):
        clock = FakeClock()
        bridge = RunBridge(run.pk, clock=clock, send=lambda *a: None)
        feed(bridge, clock, steps(10))
        bridge.close()
    assert MetricPoint.objects.filter(run=run).count() == 30
    assert list(MetricPoint.objects.filter(run=run, key="train/loss").values_list("step", flat=True).order_by("step")) \
        == list(range(1, 11))


def test_it_coalesces_step_messages_in_order(run):
    clock, sent = FakeClock(), []
    bridge = RunBridge(run.pk, clock=clock, send=lambda run_id, message: sent.append(message))
    feed(bridge, clock, steps(100))
    bridge.close()
    step_messages = [m for m in sent if m["type"] == "step"]
    assert 5 <= len(step_messages) <= 20  # ≤ ~10/s over one second of training
    points = [p["step"] for m in step_messages for p in m["points"]]
    assert points == list(range(1, 101))
    last = step_messages[-1]
    assert last["run"] == run.pk and last["step"] == 100 and last["time"] == 2100.0
    assert last["metrics"] == {"train/loss": 0.01, "lr": 0.001, "perf/samples_per_s": 80.0}
    assert set(last["points"][-1]) == {"step", "epoch", "time", "metrics"}


def test_it_sends_held_steps_before_an_eval_and_records_checkpoints_and_logs(run, settings):
    clock, sent = FakeClock(), []
    bridge = RunBridge(run.pk, clock=clock, send=lambda run_id, message: sent.append(message))
    bridge.on_start(RunStart(config={}, device="cpu", total_steps=4, start_step=0, train_rows=20, val_rows=4,
                             parameters=10))
    feed(bridge, clock, steps(2), dt=0.001)
    bridge.on_eval(EvalEnd(step=2, epoch=0, metrics={"val/mrr": 0.5, "baseline/identity/val/mrr": 0.3}, time=3000.0))
    path = settings.CHECKPOINT_DIR / f"run-{run.pk}" / "step-2.safetensors"
    bridge.on_checkpoint(CheckpointSaved(step=2, path=str(path), size_bytes=123, best=True, time=3001.0))
    bridge.on_log(LogMessage(level="info", message="hello", time=3002.0))
    # the first step goes out at once, the second is held, then sent before the eval
    assert [m["type"] for m in sent] == ["step", "step", "eval", "checkpoint", "log"]
    assert sent[-3] == {"type": "eval", "run": run.pk, "time": 3000.0, "step": 2, "epoch": 0,
                        "metrics": {"val/mrr": 0.5, "baseline/identity/val/mrr": 0.3}}
    checkpoint = Checkpoint.objects.get(run=run)
    assert checkpoint.path == f"run-{run.pk}/step-2.safetensors" and checkpoint.best and checkpoint.size_bytes == 123
    assert sent[-2]["download_url"].endswith(f"/checkpoints/{checkpoint.pk}/download/")
    assert LogEntry.objects.get(run=run).message == "hello"
    assert MetricPoint.objects.get(run=run, key="baseline/identity/val/mrr").value == 0.3
    run.refresh_from_db()
    assert run.device == "cpu" and run.total_steps == 4


def test_it_skips_values_that_are_not_finite(run):
    bridge = RunBridge(run.pk, send=lambda *a: None)
    bridge.on_step(StepEnd(step=1, epoch=0, metrics={"train/loss": float("nan"), "lr": 0.1}, time=1.0))
    bridge.close()
    assert list(MetricPoint.objects.filter(run=run).values_list("key", flat=True)) == ["lr"]


def test_should_stop_reads_the_flag_at_most_every_half_second(run):
    clock = FakeClock()
    bridge = RunBridge(run.pk, clock=clock, send=lambda *a: None)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(50):  # 50 checks within 0.49 s
            assert bridge.should_stop() is False
            clock.now += 0.01
    assert len(queries.captured_queries) == 1
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)
    assert bridge.should_stop() is False  # not re-read yet
    clock.now += 0.5
    assert bridge.should_stop() is True
