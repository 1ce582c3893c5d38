"""Redis killed and restarted mid-run: the worker keeps training, reconnects, nothing is lost.

Real processes: a Redis of the test's own, a Celery worker (solo pool), a file SQLite DB.
Live pushes fail while Redis is away (they never fail a run); metric points go to the
database, so the run ends `succeeded` with every step stored once; afterwards the same worker
takes a new run from the restarted Redis (it reconnected).
"""

import signal
import time

import pytest

from tests.conftest import wait_for
from tests.reliability.conftest import tiny_config

pytestmark = pytest.mark.slow
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


def test_it_keeps_training_through_a_redis_restart_and_loses_no_point(
        reliability_env, start_worker, submit_run, db_rows, tmp_path):
    from webapp.redis_server import start_redis

    redis = start_redis(tmp_path / "redis", persist=False)
    env = {**reliability_env["env"], "REDIS_URL": redis.url}
    try:
        worker = start_worker("broker-loss", env=env)
        run_id = submit_run(tiny_config(reliability_env["teacher"], epochs=40, checkpoint_every=50), env=env)

        def last_step() -> int:
            return db_rows("SELECT last_step FROM runs_run WHERE id = ?", run_id)[0][0]

        wait_for(lambda: last_step() >= 5, 120, "the run to train", worker, worker.log)
        redis.process.send_signal(signal.SIGKILL)
        redis.process.wait(10)
        down_at = last_step()
        time.sleep(3)
        trained_while_down = last_step() - down_at
        redis = start_redis(tmp_path / "redis", port=redis.port, persist=False)  # same port

        wait_for(lambda: db_rows("SELECT status FROM runs_run WHERE id = ?", run_id)[0][0] in FINISHED,
                 240, "the run", worker, worker.log)
        status, total = db_rows("SELECT status, total_steps FROM runs_run WHERE id = ?", run_id)[0]
        assert status == "succeeded"
        assert trained_while_down > 0 or last_step() == total  # it did not wait for Redis
        steps = [s for (s,) in db_rows("SELECT step FROM runs_metricpoint WHERE run_id = ? AND key = 'train/loss' "
                                       "ORDER BY step", run_id)]
        assert steps == list(range(1, total + 1))

        # The worker reconnected: it takes a new run from the restarted Redis.
        second = submit_run(tiny_config(reliability_env["teacher"], epochs=1, checkpoint_every=0), env=env)
        wait_for(lambda: db_rows("SELECT status FROM runs_run WHERE id = ?", second)[0][0] in FINISHED,
                 180, "a run after the restart", worker, worker.log)
        assert db_rows("SELECT status FROM runs_run WHERE id = ?", second)[0][0] == "succeeded"
        assert worker.poll() is None
    finally:
        redis.stop()
