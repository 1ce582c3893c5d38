"""Redis restarted mid-run, seen from a client: the websocket comes back and nothing is missing.

Real processes: a Redis of the test's own (so it can be killed), Daphne and a Celery worker
(`start_platform`), a `websockets` client that behaves like the run page: on a lost
connection it reconnects with backoff, then backfills from the REST API with
`since_step=<last step seen>`. The streamed steps plus the backfill cover every step once.
"""

import json
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import api_call, dialogue_jsonl, start_platform

pytestmark = pytest.mark.slow
FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


def ws_url(base_url: str, run_id: int) -> str:
    return base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"


def reconnect(base_url: str, token: str, run_id: int, within: float = 90):
    """Connect as the page does after a drop: retry with backoff until the server answers."""
    delay, deadline = 0.5, time.monotonic() + within
    while True:
        try:
            ws = connect(ws_url(base_url, run_id), additional_headers={"Authorization": f"Token {token}"},
                         open_timeout=10)
            first = json.loads(ws.recv(timeout=10))
            return ws, first
        except (OSError, TimeoutError, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5)


# The run lasts its 30 s time budget on any machine (this cube trains at 50 to 500+ steps/s),
# so it outlasts the Redis restart; a point per 5 steps keeps the history small.
LOG_EVERY = 5


def test_the_websocket_reconnects_after_a_redis_restart_and_backfill_closes_the_gap(tmp_path):
    from tests.trainer.tiny_models import build_tiny_teachers
    from webapp.redis_server import start_redis

    redis = start_redis(tmp_path / "redis", persist=False)
    teacher = build_tiny_teachers(tmp_path / "teachers")["bert"]
    try:
        with start_platform(tmp_path / "var", redis.url) as platform:
            base, token = platform.url, platform.user.token
            status, dataset = api_call(base, "/api/v1/datasets/", token, "POST", fields={"name": "faq", "kind": "dialogue"},
                                       files={"file": ("faq.jsonl", dialogue_jsonl(24))})
            assert status == 201, dataset
            config = {"task": "dialogue", "seed": 0, "cube": {"lattice": [2, 2, 8], "steps": 2, "hidden_dim": 16},
                      "train": {"epochs": 100_000, "max_minutes": 0.5, "batch_size": 8, "device": "cpu",
                                "log_every": LOG_EVERY, "eval_every": 1000, "checkpoint_every": 1000},
                      "teachers": [{"name": "tiny-bert", "path": teacher, "device": "cpu"}]}
            status, run = api_call(base, "/api/v1/runs/", token, "POST",
                                   json_body={"dataset": dataset["id"], "config": config})
            assert status == 201, run

            seen: set[int] = set()
            ws, first = reconnect(base, token, run["id"])
            assert first["type"] == "status"
            while len(seen) < 5:  # live steps arrive before the restart
                message = json.loads(ws.recv(timeout=120))
                seen.update(point["step"] for point in message.get("points", []))

            redis.process.send_signal(signal.SIGKILL)
            redis.process.wait(10)
            time.sleep(2)
            redis = start_redis(tmp_path / "redis", port=redis.port, persist=False)  # same port
            ws.close()

            ws, first = reconnect(base, token, run["id"])  # the page's reconnect
            assert first["type"] == "status" and first["run"] == run["id"]
            assert first["status"] == "running", f"the run must outlast the restart: {first}"
            cursor = max(seen)
            _, missed = api_call(base, f"/api/v1/runs/{run['id']}/metrics/?keys=train/loss&since_step={cursor}", token)
            seen.update(step for step, _ in missed.get("train/loss", []))
            live_after_restart = set()
            final = None
            deadline = time.monotonic() + 180
            while final is None and time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=max(1, deadline - time.monotonic())))
                if message["type"] == "step":
                    live_after_restart.update(point["step"] for point in message["points"])
                if message["type"] == "status" and message["status"] in FINISHED:
                    final = message
            ws.close()
            assert final is not None and final["status"] == "succeeded", final
            assert live_after_restart, "no live step arrived after Redis came back"
            assert max(live_after_restart) > cursor

            _, detail = api_call(base, f"/api/v1/runs/{run['id']}/", token)
            total = detail["last_step"]
            # what the page holds: streamed before, backfilled, streamed after; a final backfill
            # from its cursor fills whatever arrived between the REST answer and the live stream
            _, tail = api_call(base, f"/api/v1/runs/{run['id']}/metrics/?keys=train/loss&since_step={max(seen)}", token)
            page = seen | live_after_restart | {step for step, _ in tail.get("train/loss", [])}
            logged = list(range(LOG_EVERY, total + 1, LOG_EVERY))
            assert page == set(logged)
            _, stored = api_call(base, f"/api/v1/runs/{run['id']}/metrics/?keys=train/loss", token)
            assert [step for step, _ in stored["train/loss"]] == logged  # once each
    finally:
        redis.stop()
