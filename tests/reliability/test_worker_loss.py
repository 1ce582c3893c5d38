"""A worker killed with SIGKILL mid-run: another worker finishes the run from its checkpoint.

Real processes: Redis, two Celery workers (solo pool) and a file SQLite database. The first
worker is `kill -9`ed after a checkpoint; the second worker's reaper notices the silent
heartbeat, re-queues the run, and the second worker resumes it. The run ends `succeeded`
with each step of `train/loss` stored exactly once.
"""

import os
import signal
import time

import pytest

from tests.conftest import wait_for
from tests.reliability.conftest import tiny_config

pytestmark = pytest.mark.slow


# Long enough that a fast machine is still mid-run when the test kills its worker at step 10.
LONG_EPOCHS = 100


FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


def wait_until_finished(db_rows, run_id, worker) -> None:
    wait_for(lambda: run_row(db_rows, run_id)["status"] in FINISHED, 240, "the resumed run", worker, worker.log)


def loss_steps(db_rows, run_id) -> list[int]:
    """The steps of the run's stored `train/loss` points, in order (duplicates kept)."""
    return [step for (step,) in db_rows("SELECT step FROM runs_metricpoint WHERE run_id = ? AND key = 'train/loss' "
                                        "ORDER BY step", run_id)]


def run_row(db_rows, run_id):
    return dict(zip(("status", "attempt", "last_step", "total_steps", "resume_from", "error"),
                    db_rows("SELECT status, attempt, last_step, total_steps, resume_from, error FROM runs_run "
                            "WHERE id = ?", run_id)[0]))


def test_it_resumes_a_run_whose_worker_was_killed_and_keeps_every_step_once(
        reliability_env, start_worker, submit_run, db_rows):
    first = start_worker("first")
    run_id = submit_run(tiny_config(reliability_env["teacher"], epochs=LONG_EPOCHS, checkpoint_every=5))
    # Kill once a checkpoint beyond the first exists and the run is well before its end.
    wait_for(lambda: db_rows("SELECT MAX(step) FROM runs_checkpoint WHERE run_id = ?", run_id)[0][0] >= 10,
             240, "a checkpoint at step 10", first, first.log)
    before = run_row(db_rows, run_id)
    assert before["status"] == "running" and before["attempt"] == 1
    assert before["last_step"] < before["total_steps"], "the run ended before the kill: make it longer"
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait(10)

    second = start_worker("second")
    wait_for(lambda: run_row(db_rows, run_id)["attempt"] == 2, 180, "the re-queued attempt", second, second.log)
    detected_s = time.monotonic() - killed_at
    wait_until_finished(db_rows, run_id, second)

    after = run_row(db_rows, run_id)
    assert after["status"] == "succeeded", after
    assert after["attempt"] == 2 and after["resume_from"].startswith(f"run-{run_id}/")
    steps = loss_steps(db_rows, run_id)
    assert steps == list(range(1, after["total_steps"] + 1))  # gap-free and duplicate-free
    assert after["last_step"] == after["total_steps"]
    logs = [message for (message,) in db_rows("SELECT message FROM runs_logentry WHERE run_id = ?", run_id)]
    assert any("no heartbeat" in message and "re-queued" in message for message in logs), logs
    assert any("resuming from the checkpoint" in message for message in logs), logs
    print(f"\nkill -9 -> re-queued after {detected_s:.1f} s (timeout 3 s, reaper every 1 s, incl. worker start)")


def test_a_frozen_worker_that_comes_back_after_being_reaped_stops_without_writing(
        reliability_env, start_worker, submit_run, db_rows):
    """SIGSTOP past the heartbeat timeout (a VM pause, a network partition), then SIGCONT:
    the run was re-queued and resumed elsewhere; the old worker notices at its next step
    that it lost the lease and stops without checkpointing or recording anything."""
    first = start_worker("frozen")
    run_id = submit_run(tiny_config(reliability_env["teacher"], epochs=LONG_EPOCHS, checkpoint_every=5))
    wait_for(lambda: db_rows("SELECT MAX(step) FROM runs_checkpoint WHERE run_id = ?", run_id)[0][0] >= 10,
             240, "a checkpoint at step 10", first, first.log)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = start_worker("takes-over")
        wait_for(lambda: run_row(db_rows, run_id)["attempt"] == 2, 180, "the re-queued attempt", second, second.log)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: "lost its lease" in first.log.read_text(), 180, "the old worker to notice", first, first.log)
    wait_until_finished(db_rows, run_id, second)

    after = run_row(db_rows, run_id)
    assert after["status"] == "succeeded" and after["attempt"] == 2, after
    steps = loss_steps(db_rows, run_id)
    assert steps == list(range(1, after["total_steps"] + 1))
    assert first.poll() is None  # the old worker lives on, ready for the next run
    assert "stopped without recording anything" in first.log.read_text()


def test_a_worker_stopped_for_a_deploy_hands_its_run_to_the_next_worker(
        reliability_env, start_worker, submit_run, db_rows):
    """SIGTERM (docker stop, an upgrade): the run checkpoints, goes back to the queue, and the
    next worker resumes it; the history stays exact."""
    first = start_worker("deployed")
    run_id = submit_run(tiny_config(reliability_env["teacher"], epochs=LONG_EPOCHS, checkpoint_every=50))
    wait_for(lambda: run_row(db_rows, run_id)["last_step"] >= 10, 240, "step 10", first, first.log)
    first.terminate()
    assert first.wait(60) == 0
    stopped = run_row(db_rows, run_id)
    assert stopped["status"] == "queued" and stopped["resume_from"], stopped  # not left `running`

    second = start_worker("next")
    wait_until_finished(db_rows, run_id, second)
    after = run_row(db_rows, run_id)
    assert after["status"] == "succeeded" and after["attempt"] == 2, after
    steps = loss_steps(db_rows, run_id)
    assert steps == list(range(1, after["total_steps"] + 1))
