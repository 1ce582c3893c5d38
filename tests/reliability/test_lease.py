"""The run lease and the reaper on the test database (fast: no processes).

claim/beat/finish are conditional UPDATEs: a second delivery, a stale worker, a second
reaper and a cancel racing the end each lose cleanly instead of writing over the winner.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.runs.actions import RunFinished, cancel_run
from webapp.runs.models import Checkpoint, LogEntry, MetricPoint, Run
from webapp.runs.reliability import beat, claim_run, finish_run, prepare_resume, reap_stale_runs


@pytest.fixture(autouse=True)
def _storage(isolated_storage):
    """Files under a tmp dir; the in-memory channel layer takes the status messages."""


@pytest.fixture
def run(alice, make_dataset):
    return Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice), config={"seed": 1})


def running(run, seconds_since_beat: float, attempt: int = 1, **fields) -> Run:
    beat_at = timezone.now() - timedelta(seconds=seconds_since_beat)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, attempt=attempt, heartbeat_at=beat_at,
                                         started_at=beat_at, **fields)
    run.refresh_from_db()
    return run


def capture():
    sent = []
    return sent, lambda run_id, queue, task_id: sent.append((run_id, queue, task_id))


def test_it_claims_a_queued_run_once_and_counts_attempts(run):
    assert claim_run(run.pk) == 1
    assert claim_run(run.pk) is None  # a second delivery of the same message does nothing
    run.refresh_from_db()
    assert run.status == "running" and run.attempt == 1 and run.heartbeat_at is not None
    first_start = run.started_at
    Run.objects.filter(pk=run.pk).update(status=Run.Status.QUEUED)  # re-queued after a lost worker
    assert claim_run(run.pk) == 2
    run.refresh_from_db()
    assert run.started_at == first_start  # time-to-start measures the first pick-up
    assert run.time_to_start_s() == pytest.approx((first_start - run.created_at).total_seconds(), abs=1e-3)


def test_a_beat_of_a_stale_attempt_matches_nothing(run):
    running(run, 0, attempt=2)
    assert beat(run.pk, 2) is True
    assert beat(run.pk, 1) is False  # the old worker learns that it lost the lease


def test_it_requeues_a_silent_run_from_its_latest_checkpoint(run, settings):
    settings.CUBELAB_MAX_ATTEMPTS = 3
    running(run, 60)
    Checkpoint.objects.create(run=run, step=10, path=f"run-{run.pk}/checkpoints/step-000010")
    Checkpoint.objects.create(run=run, step=20, path=f"run-{run.pk}/checkpoints/step-000020")
    sent, send = capture()
    reaped = reap_stale_runs(timeout_s=30, send=send)
    assert [(r.run_id, r.outcome) for r in reaped] == [(run.pk, "requeued")]
    run.refresh_from_db()
    assert run.status == "queued" and run.resume_from == f"run-{run.pk}/checkpoints/step-000020"
    assert sent == [(run.pk, "cpu", run.task_id)] and run.finished_at is None
    assert "no heartbeat for over 30 s; re-queued to resume from step 20 (attempt 2)" in run.log_entries.get().message
    assert reap_stale_runs(timeout_s=30, send=send) == [] and len(sent) == 1  # a second reaper finds nothing


def test_it_leaves_a_beating_run_alone(run):
    running(run, 5)
    sent, send = capture()
    assert reap_stale_runs(timeout_s=30, send=send) == [] and sent == []
    assert Run.objects.get(pk=run.pk).status == "running"


def test_it_marks_a_silent_run_without_checkpoint_interrupted(run):
    running(run, 60)
    sent, send = capture()
    assert [r.outcome for r in reap_stale_runs(timeout_s=30, send=send)] == ["interrupted"] and sent == []
    run.refresh_from_db()
    assert run.status == "interrupted" and run.finished_at and "no heartbeat for over 30 s" in run.error


def test_it_stops_requeueing_after_max_attempts(run, settings):
    settings.CUBELAB_MAX_ATTEMPTS = 2
    running(run, 60, attempt=2)
    Checkpoint.objects.create(run=run, step=10, path="x")
    sent, send = capture()
    assert [r.outcome for r in reap_stale_runs(timeout_s=30, send=send)] == ["interrupted"] and sent == []
    assert "not re-queued after 2 attempts" in Run.objects.get(pk=run.pk).error


def test_a_silent_run_being_cancelled_ends_cancelled_not_requeued(run):
    running(run, 60, cancel_requested=True)
    Checkpoint.objects.create(run=run, step=10, path="x")
    sent, send = capture()
    assert [r.outcome for r in reap_stale_runs(timeout_s=30, send=send)] == ["cancelled"] and sent == []
    assert Run.objects.get(pk=run.pk).status == "cancelled"


def test_a_broker_failure_at_requeue_leaves_the_run_interrupted_with_the_reason(run):
    running(run, 60)
    Checkpoint.objects.create(run=run, step=10, path="x")

    def down(*args):
        raise ConnectionError("redis is down")

    assert [r.outcome for r in reap_stale_runs(timeout_s=30, send=down)] == ["interrupted"]
    run.refresh_from_db()
    assert run.status == "interrupted" and "could not re-queue it: ConnectionError: redis is down" in run.error


def test_a_stale_attempt_cannot_record_its_end(run):
    running(run, 0, attempt=2)
    assert finish_run(run.pk, 1, Run.Status.SUCCEEDED) is None
    assert Run.objects.get(pk=run.pk).status == "running"
    assert finish_run(run.pk, 2, Run.Status.SUCCEEDED) == "succeeded"


def test_a_cancel_accepted_before_the_end_makes_it_cancelled_never_succeeded(run):
    running(run, 0)
    cancel_run(run, reason="cancelled by alice")  # the API said yes: the run is still running, flagged
    cancel_run(run, reason="cancelled by bob")  # a second request changes nothing
    assert finish_run(run.pk, 1, Run.Status.SUCCEEDED, summary={"val/mrr": 0.5}, reason="completed") == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled" and run.summary == {"val/mrr": 0.5} and run.heartbeat_at is None
    assert run.end_reason == "cancelled by alice"  # who asked, not what the trainer said


def test_the_trainer_reason_is_recorded_when_nobody_asked_the_run_to_stop(run):
    running(run, 0)
    assert finish_run(run.pk, 1, Run.Status.SUCCEEDED, reason="early stopping at step 40") == "succeeded"
    assert Run.objects.get(pk=run.pk).end_reason == "early stopping at step 40"


def test_a_cancel_arriving_after_the_end_is_refused(run):
    running(run, 0)
    assert finish_run(run.pk, 1, Run.Status.SUCCEEDED) == "succeeded"
    with pytest.raises(RunFinished, match="has already succeeded"):
        cancel_run(run)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.cancel_requested is False


def test_a_failure_stays_failed_even_when_cancelled(run):
    running(run, 0, cancel_requested=True)
    assert finish_run(run.pk, 1, Run.Status.FAILED, "diverged") == "failed"


def test_resuming_drops_the_points_past_the_checkpoint_so_each_step_is_stored_once(run):
    running(run, 0, last_step=13)
    Checkpoint.objects.create(run=run, step=10, path="run-1/checkpoints/step-000010")
    MetricPoint.objects.bulk_create([MetricPoint(run=run, key="train/loss", step=s, value=s, time=0.0)
                                     for s in range(1, 14)])
    Run.objects.filter(pk=run.pk).update(resume_from="run-1/checkpoints/step-000010")
    run.refresh_from_db()
    assert prepare_resume(run) == ("run-1/checkpoints/step-000010", 10)
    assert list(run.metric_points.values_list("step", flat=True).order_by("step")) == list(range(1, 11))
    assert Run.objects.get(pk=run.pk).last_step == 10
    # The replay writes steps 11.. again; a repeated write of a kept step is ignored, not doubled.
    MetricPoint.objects.bulk_create([MetricPoint(run=run, key="train/loss", step=s, value=s, time=1.0)
                                     for s in range(9, 14)], ignore_conflicts=True)
    assert list(run.metric_points.values_list("step", flat=True).order_by("step")) == list(range(1, 14))
    assert LogEntry.objects.count() == 0


def test_the_api_shows_the_measured_time_to_start_and_the_attempt(api_client, run):
    assert api_client.get(f"/api/v1/runs/{run.pk}/").json()["time_to_start_s"] is None
    Run.objects.filter(pk=run.pk).update(started_at=run.created_at + timedelta(seconds=2.5), attempt=1)
    body = api_client.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["time_to_start_s"] == 2.5 and body["attempt"] == 1


def test_the_reap_runs_command_reports_what_it_did(run, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setattr("webapp.runs.reliability._send_task", lambda *args: None)
    running(run, 60)
    out = StringIO()
    call_command("reap_runs", "--timeout", "30", stdout=out)
    assert out.getvalue().startswith(f"run {run.pk}: interrupted — interrupted: its worker")
    assert Run.objects.get(pk=run.pk).status == "interrupted"


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_and_notices_a_lost_lease(alice, make_dataset):
    import time

    from webapp.runs.reliability import Heartbeat

    run = Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice), config={"seed": 1})
    running(run, 60)
    with Heartbeat(run.pk, 1, interval=0.05) as heartbeat:
        deadline = time.monotonic() + 10
        while Run.objects.get(pk=run.pk).heartbeat_at < timezone.now() - timedelta(seconds=5):
            assert time.monotonic() < deadline, "no beat"
            time.sleep(0.02)
        assert not heartbeat.lost.is_set()
        Run.objects.filter(pk=run.pk).update(attempt=2)  # reaped and claimed by another worker
        assert heartbeat.lost.wait(10)


def test_a_worker_shutdown_hands_a_checkpointed_run_back_to_the_queue(run):
    from webapp.runs.reliability import requeue_after_shutdown

    running(run, 0)
    Checkpoint.objects.create(run=run, step=12, path=f"run-{run.pk}/checkpoints/step-000012")
    sent, send = capture()
    assert requeue_after_shutdown(run.pk, 1, "the worker shut down", send=send) == "queued"
    run.refresh_from_db()
    assert run.status == "queued" and run.resume_from.endswith("step-000012") and sent == [(run.pk, "cpu", run.task_id)]
    assert requeue_after_shutdown(run.pk, 1, "again", send=send) is None and len(sent) == 1  # not this attempt's


def test_a_worker_shutdown_keeps_a_cancelled_run_stopped(run):
    from webapp.runs.reliability import requeue_after_shutdown

    running(run, 0, cancel_requested=True)
    Checkpoint.objects.create(run=run, step=12, path="x")
    sent, send = capture()
    assert requeue_after_shutdown(run.pk, 1, "the worker shut down", send=send) == "interrupted" and sent == []


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_run_that_does_not_stop_within_the_grace_period_is_recorded_cancelled(alice, make_dataset):
    from webapp.runs.reliability import Heartbeat

    run = Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice), config={"seed": 1})
    running(run, 0)
    with Heartbeat(run.pk, 1, interval=0.05, cancel_grace=0.3) as heartbeat:
        cancel_run(run)  # the trainer never looks (stuck in a long teacher encoding)
        assert heartbeat.lost.wait(10)  # the guard now stops the attempt without writing
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished_at is not None
    assert "did not stop within the 0.3 s grace period" in run.log_entries.get().message


def test_heartbeats_are_judged_by_the_database_clock(run):
    import time

    assert claim_run(run.pk) == 1  # heartbeat_at = the database's now
    sent, send = capture()
    assert reap_stale_runs(timeout_s=60, send=send) == []
    assert beat(run.pk, 1)
    time.sleep(1.2)
    assert [r.outcome for r in reap_stale_runs(timeout_s=1, send=send)] == ["interrupted"]


def test_a_worker_whose_clock_runs_an_hour_behind_is_not_reaped(run, monkeypatch):
    running(run, 0)
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(hours=1))  # the worker's machine
    assert beat(run.pk, 1)
    monkeypatch.setattr(timezone, "now", real_now)
    sent, send = capture()
    assert reap_stale_runs(timeout_s=30, send=send) == [] and Run.objects.get(pk=run.pk).status == "running"


def test_a_reaper_whose_clock_runs_an_hour_ahead_reaps_no_beating_run(run, monkeypatch):
    assert claim_run(run.pk) == 1
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))  # the reaper's machine
    sent, send = capture()
    assert reap_stale_runs(timeout_s=30, send=send) == [] and Run.objects.get(pk=run.pk).status == "running"
