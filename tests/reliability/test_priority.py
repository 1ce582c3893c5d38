"""Per-queue priority: the queue position follows it, the API takes it, and Redis hands the
most urgent run to the next free worker first."""

import pytest

from webapp.runs.actions import celery_priority
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("webapp.runs.actions.send_run_task", lambda *args: calls.append(args))
    return calls


def queued(dataset, owner, priority, queue="cpu"):
    return Run.objects.create(owner=owner, dataset=dataset, config={}, queue=queue, priority=priority)


def test_the_queue_position_puts_urgent_runs_first(alice, make_dataset):
    dataset = make_dataset(alice)
    first, second = queued(dataset, alice, 5), queued(dataset, alice, 5)
    urgent = queued(dataset, alice, 9)
    other_queue = queued(dataset, alice, 9, queue="gpu")
    assert [urgent.queue_position(), first.queue_position(), second.queue_position()] == [1, 2, 3]
    assert other_queue.queue_position() == 1


def test_the_api_takes_a_priority_and_sends_it_flipped_for_celery(api_client, alice, make_dataset, sent,
                                                                  django_capture_on_commit_callbacks):
    config = {"task": "dialogue", "seed": 0, "cube": {"lattice": [8, 8, 6], "steps": 2},
              "train": {"epochs": 1, "batch_size": 8}, "teachers": [{"name": "minilm"}]}
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/runs/", {"dataset": make_dataset(alice).pk, "config": config,
                                                     "priority": 8}, format="json")
    assert response.status_code == 201 and response.json()["priority"] == 8
    run = Run.objects.get()
    assert sent == [(run.pk, "cpu", run.task_id, 8)]
    assert celery_priority(8) == 1 and celery_priority(0) == 9  # Redis serves Celery priority 0 first
    bad = api_client.post("/api/v1/runs/", {"dataset": run.dataset_id, "config": config, "priority": 12},
                          format="json")
    assert bad.status_code == 400 and [error["path"] for error in bad.json()["errors"]] == ["priority"]


def test_redis_hands_out_the_most_urgent_message_first(redis_server):
    """The project's broker transport options really order messages on a real Redis."""
    from django.conf import settings
    from kombu import Connection

    with Connection(redis_server.url, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as connection:
        with connection.SimpleQueue("priority-test") as queue:
            # adjacent priorities: kombu's default four levels would lump 4 and 5 together
            for name, priority in (("low", 4), ("high", 9), ("normal", 5)):
                queue.put(name, priority=celery_priority(priority))
            order = []
            for _ in range(3):
                message = queue.get(timeout=5)
                order.append(message.payload)
                message.ack()
    assert order == ["high", "normal", "low"]
