"""A queued run whose Redis message was lost (Redis restarted without its file) is sent again.

Fast: the database only; the broker is a list that records what would be sent.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.runs.models import LogEntry, Run
from webapp.runs.reliability import claim_run, reap, requeue_queued_after_s, resend_lost_messages


@pytest.fixture(autouse=True)
def _storage(isolated_storage):
    """Files under a tmp dir; the in-memory channel layer takes the status messages."""


@pytest.fixture
def run(alice, make_dataset):
    return Run.objects.create(name="r", owner=alice, dataset=make_dataset(alice), config={"seed": 1},
                              task_id="first-message", priority=7)


def queued_since(run, seconds: float) -> Run:
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    run.refresh_from_db()
    return run


def capture():
    sent = []
    return sent, lambda run_id, queue, task_id: sent.append((run_id, queue, task_id))


def test_it_sends_a_long_queued_run_again_once_and_says_so_in_its_log(run):
    queued_since(run, 700)
    sent, send = capture()
    assert [(r.run_id, r.outcome) for r in resend_lost_messages(after_s=600, send=send)] == [(run.pk, "resent")]
    run.refresh_from_db()
    assert run.status == "queued" and run.task_id != "first-message"
    assert sent == [(run.pk, "cpu", run.task_id)]  # a new message id: Celery keeps the two apart
    assert "still queued 600 s after its last message: sent it again" in run.log_entries.get().message
    assert resend_lost_messages(after_s=600, send=send) == [] and len(sent) == 1  # the next look waits again


def test_it_leaves_a_recently_queued_run_alone(run):
    queued_since(run, 60)
    sent, send = capture()
    assert resend_lost_messages(after_s=600, send=send) == [] and sent == []


def test_a_run_requeued_recently_counts_from_its_requeue_not_its_creation(run):
    queued_since(run, 3 * 3600)  # submitted hours ago, re-queued a minute ago after its worker was lost
    LogEntry.objects.create(run=run, time=time.time() - 60, level="warning", message="re-queued to resume")
    sent, send = capture()
    assert resend_lost_messages(after_s=600, send=send) == [] and sent == []


def test_a_duplicate_delivery_after_the_resend_is_a_no_op(run):
    queued_since(run, 700)
    sent, send = capture()
    resend_lost_messages(after_s=600, send=send)
    assert claim_run(run.pk) == 1  # the old message was only waiting after all: it claims the run
    assert claim_run(run.pk) is None  # the re-sent one then finds nothing to do


def test_runs_that_are_not_queued_are_never_resent(run):
    queued_since(run, 700)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING, heartbeat_at=timezone.now(), attempt=1)
    sent, send = capture()
    assert resend_lost_messages(after_s=600, send=send) == [] and sent == []


def test_a_broker_failure_is_logged_and_retried_after_the_bound(run):
    queued_since(run, 700)

    def down(*args):
        raise ConnectionError("redis is down")

    assert [r.outcome for r in resend_lost_messages(after_s=600, send=down)] == ["queued"]
    assert "could not send its message again: ConnectionError: redis is down" in \
        run.log_entries.order_by("-id").first().message
    assert Run.objects.get(pk=run.pk).status == "queued"


def test_zero_turns_it_off_and_the_env_var_sets_the_bound(run, monkeypatch, settings):
    queued_since(run, 10 ** 6)
    sent, send = capture()
    assert resend_lost_messages(after_s=0, send=send) == [] and sent == []
    if hasattr(settings, "CUBELAB_REQUEUE_QUEUED_AFTER_S"):
        del settings.CUBELAB_REQUEUE_QUEUED_AFTER_S
    monkeypatch.setenv("CUBELAB_REQUEUE_QUEUED_AFTER_S", "42")
    assert requeue_queued_after_s() == 42
    monkeypatch.delenv("CUBELAB_REQUEUE_QUEUED_AFTER_S")
    assert requeue_queued_after_s() == 600


def test_the_reaper_round_resends_with_the_run_priority(run, monkeypatch):
    queued_since(run, 10 ** 6)
    sent = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: sent.append(args))
    assert [r.outcome for r in reap()] == ["resent"]
    run.refresh_from_db()
    assert sent == [(run.pk, "cpu", run.task_id, 7)]
