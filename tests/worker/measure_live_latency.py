"""Measure live-progress latency on real services (not collected by pytest; run by hand):

    .venv/bin/python -m tests.worker.measure_live_latency [--teacher minilm|tiny] [--steps 240]

1. trainer step event -> arrival on a websocket client: per point, arrival time minus the
   ``time`` the trainer stamped on it (same clock: one machine), p50/p95 over all points.
2. ``POST /api/v1/runs/`` -> first step message, with an idle worker that already ran once
   (torch imported, teacher embeddings cached).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

from tests.conftest import api_call, dialogue_jsonl, start_platform
from webapp.redis_server import start_redis


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def submit(platform, dataset_id: int, config: dict) -> tuple[int, float]:
    posted = time.time()
    status, run = api_call(platform.url, "/api/v1/runs/", platform.user.token, "POST",
                           json_body={"dataset": dataset_id, "config": config})
    assert status == 201, run
    return run["id"], posted


def watch(platform, run_id: int) -> tuple[list[float], float | None]:
    """Latency of every streamed point, and the arrival time of the first step message."""
    latencies, first_step = [], None
    url = platform.url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
    with connect(url, additional_headers={"Authorization": f"Token {platform.user.token}"}) as ws:
        while True:
            message = json.loads(ws.recv(timeout=600))
            arrived = time.time()
            if message["type"] == "step":
                first_step = first_step or arrived
                latencies += [arrived - point["time"] for point in message["points"]]
            if message["type"] == "status" and message["status"] not in ("queued", "running"):
                assert message["status"] == "succeeded", message
                return latencies, first_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teacher", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--rows", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.teacher == "tiny":
            from tests.trainer.tiny_models import build_tiny_teachers

            teacher = {"name": "tiny-bert", "path": build_tiny_teachers(tmp / "teachers")["bert"], "device": "cpu"}
            lattice = [2, 2, 8]
        else:
            teacher, lattice = {"name": "minilm", "device": "cpu"}, [8, 8, 6]
        config = {"task": "dialogue", "seed": 0, "cube": {"lattice": lattice, "steps": 2, "hidden_dim": 16},
                  "train": {"epochs": args.epochs, "batch_size": 4, "device": "cpu"}, "teachers": [teacher]}
        redis = start_redis(tmp / "redis")
        try:
            (tmp / "var").mkdir()
            with start_platform(tmp / "var", redis.url) as platform:
                status, dataset = api_call(platform.url, "/api/v1/datasets/", platform.user.token, "POST",
                                           fields={"name": "bench", "kind": "dialogue"},
                                           files={"file": ("bench.jsonl", dialogue_jsonl(args.rows))})
                assert status == 201, dataset
                run_id, _ = submit(platform, dataset["id"], config)  # warms the worker and the cache
                latencies, _ = watch(platform, run_id)
                run_id, posted = submit(platform, dataset["id"], config)
                _, first_step = watch(platform, run_id)
        finally:
            redis.stop()
    print(json.dumps({
        "teacher": args.teacher, "points": len(latencies),
        "step_to_websocket_ms": {"p50": round(1000 * statistics.median(latencies), 1),
                                 "p95": round(1000 * percentile(latencies, 0.95), 1),
                                 "max": round(1000 * max(latencies), 1)},
        "post_to_first_step_s": round(first_step - posted, 3) if first_step else None,
    }, indent=2))


if __name__ == "__main__":
    main()
