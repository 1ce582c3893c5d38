"""How far the pre-flight time per epoch is from the time an epoch really takes.

    python benchmarks/estimate_bench.py                       # 8x8x6, 8x8x12, 16x16x12 on the CPU
    python benchmarks/estimate_bench.py --lattices 8x8x12 --rows 1024

The platform estimates time per epoch as steps per epoch × analytic FLOPs per step ÷ the
queue's speed, and the speed is what a worker measured on its device (`trainer.bench.calibrate`:
an epoch of the real loop on the default 8×8×6 cube). This script calibrates once, then trains
each lattice (default cell, synthetic vectors with `dim = cells`, exact projection) for three
epochs with `trainer.loop.train`, and compares the mean of epochs 2–3 (each with its
evaluation) with the estimate. It prints one JSON object per lattice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.bench import calibrate, parse_lattices  # noqa: E402
from trainer.config import parse_config  # noqa: E402
from trainer.estimate import estimate  # noqa: E402
from trainer.events import Callback  # noqa: E402
from trainer.loop import train  # noqa: E402
from trainer.vectors import save_vector_pairs  # noqa: E402


class EvalClock(Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_eval(self, event) -> None:
        self.times.append(time.perf_counter())


def measure_epoch(lattice: tuple[int, int, int], rows: int, batch: int, folder: Path) -> tuple[float, dict]:
    dim = math.prod(lattice)
    generator = torch.Generator().manual_seed(1)
    questions = F.normalize(torch.randn(rows, dim, generator=generator), dim=-1)
    answers = F.normalize(questions + 0.3 * torch.randn(rows, dim, generator=generator), dim=-1)
    data = folder / f"{dim}.safetensors"
    save_vector_pairs(data, questions, answers)
    config = parse_config({"task": "dialogue", "seed": 0, "cube": {"lattice": list(lattice)},
                           "train": {"epochs": 3, "batch_size": batch, "device": "cpu"},
                           "data": {"path": str(data)}, "teachers": []})
    clock = EvalClock()
    train(config, callbacks=[clock])
    later = [b - a for a, b in zip(clock.times, clock.times[1:])]
    return sum(later) / len(later), config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lattices", default="8x8x6,8x8x12,16x16x12")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    speed = calibrate(torch.device("cpu"))
    print(json.dumps({"calibration": speed}))
    with tempfile.TemporaryDirectory() as folder:
        for lattice in parse_lattices(args.lattices):
            measured, config = measure_epoch(lattice, args.rows, args.batch, Path(folder))
            steps = math.ceil(int(args.rows * (1 - config.train.val_fraction)) / args.batch)
            flops = estimate(config.cube, math.prod(lattice), args.batch)["flops_per_step"]
            estimated = steps * flops / speed["flops_per_s"]
            print(json.dumps({"lattice": "x".join(map(str, lattice)), "steps_per_epoch": steps,
                              "measured_epoch_s": round(measured, 3), "estimated_epoch_s": round(estimated, 3),
                              "error": round(estimated / measured - 1, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
