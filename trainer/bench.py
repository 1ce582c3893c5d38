"""``python -m trainer bench``: how fast one training step of the cube runs here.

For each lattice (default 8×8×6, 8×8×12, 16×16×12, 32×32×24) at the default cell
configuration, ``dim = cells`` (exact projection), one full training step (forward, MSE
backward, AdamW step) is timed after warm-up (on CPU, large lattices run the step's forward and
backward in micro-batches of at most ``CHUNK_ROWS`` cell rows, gradients summed: still one
batch-64 optimizer step, see ``--micro-batch``); the row reports the median samples/s, the peak
memory, the matmul FLOPs of a step counted with ``torch.utils.flop_counter.FlopCounterMode``,
the FLOP/s achieved, and that as a fraction of a dense fp32 2048³ matmul timed in the same
process just before each timed step (``matmul_fraction``: the median over steps of the two
rates' ratio, so that both are measured under the same load on a shared machine).

Memory: on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before the
model was built; on CPU the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) above its resident set before the model was built (or, where
that reset is refused, the highest RSS sampled every 5 ms with psutil). A lattice whose
activations would not fit in half the free memory (``trainer.estimate``) runs with
``checkpoint_steps``; one that would not fit even so is skipped, and the row says why.

``--prototype`` times the research prototype's tiny cell (state 8, hidden 16, 10 steps) on
8×8×6 and compares it with the prototype's throughput. The prototype looped over samples and
cells in Python: 123 ms for one propagation step of one sample, forward only, so 1.23 s per
sample forward for 10 steps. We assume its backward costs twice its forward (training ≈ 3×
forward, the usual matmul accounting), i.e. 3.69 s per training sample, 0.271 samples/s.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from trainer.config import CubeConfig
from trainer.cube import Cube
from trainer.estimate import estimate, fits_in

DEFAULT_LATTICES = "8x8x6,8x8x12,16x16x12,32x32x24"
PROTOTYPE_SECONDS_PER_STEP = 0.123  # one propagation step of one sample, forward only
PROTOTYPE_CELL = {"state_dim": 8, "hidden_dim": 16, "steps": 10}
FORWARD_BACKWARD_FACTOR = 3.0  # assumed: the prototype's backward costs twice its forward
# On CPU a step runs in micro-batches of at most this many (sample, cell) rows, so that its
# activations stay near half a GiB whatever the lattice (32×32×24 at batch 64 would keep
# ~13 GiB, or need checkpointed steps). 8×8×6 and 8×8×12 at batch 64 run in one piece.
CHUNK_ROWS = 65_536
ROW_KEYS = ("lattice", "samples_per_s", "peak_mem_mb", "flops_per_step", "matmul_flops_per_s", "matmul_fraction")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench: --device cuda asked for, but CUDA is not available")
        return 2
    device = torch.device(args.device)
    overrides = dict(parse_override(item) for item in args.set)
    if args.prototype:
        plans = [((8, 8, 6), {**overrides, **PROTOTYPE_CELL})]
    else:
        plans = [(lattice, overrides) for lattice in parse_lattices(args.lattices)]
    rows = []
    for lattice, fields in plans:
        cube = CubeConfig(lattice=lattice, **fields)
        micro = args.micro_batch if args.micro_batch else (0 if device.type == "cpu" else args.batch)
        row = bench_lattice(cube, args.batch, args.steps, args.warmup, device, args.precision, args.matmul_size, micro)
        if args.prototype:
            add_prototype_comparison(row)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(format_table(rows, device, args))
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer bench", description="Time one cube training step per lattice.")
    parser.add_argument("--json", action="store_true", help="one JSON object per lattice")
    parser.add_argument("--lattices", default=DEFAULT_LATTICES, help=f"comma-separated XxYxZ (default {DEFAULT_LATTICES})")
    parser.add_argument("--batch", type=int, default=64, help="samples per training step (default 64)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per lattice (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast forward")
    parser.add_argument("--prototype", action="store_true", help="the prototype's tiny cell on 8×8×6, vs the prototype")
    parser.add_argument(
        "--micro-batch", type=int, default=0, metavar="N",
        help=f"samples per forward/backward inside the step (default: whole batch on CUDA; on CPU as many as keep ≤ {CHUNK_ROWS} cell rows)",
    )
    parser.add_argument("--matmul-size", type=int, default=2048, metavar="N", help="reference matmul is N×N×N (default 2048)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a cube field, e.g. state_dim=32")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.micro_batch < 0:
        parser.error("--batch and --steps must be ≥ 1, --warmup and --micro-batch ≥ 0")
    return args


def parse_lattices(text: str) -> list[tuple[int, int, int]]:
    lattices = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(\d+)[x×](\d+)[x×](\d+)\s*", item)
        if not match:
            raise SystemExit(f"bench: lattice {item!r} is not XxYxZ, e.g. 8x8x12")
        lattices.append(tuple(int(side) for side in match.groups()))
    return lattices


def parse_override(item: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep or key not in CubeConfig.model_fields or key == "lattice":
        raise SystemExit(f"bench: --set wants FIELD=VALUE with a cube field other than lattice, got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def bench_lattice(
    cube: CubeConfig,
    batch: int,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: str,
    matmul_size: int = 2048,
    micro_batch: int = 0,
) -> dict:
    dim = cube.cells
    lattice = "x".join(str(side) for side in cube.lattice)
    free = free_memory(device)
    micro = micro_batch if micro_batch else max(1, min(batch, CHUNK_ROWS // cube.cells))
    budget = int(0.5 * free)  # the machine may be shared: leave the other half alone
    checkpointed = not fits_in(cube, dim, micro, budget)
    if checkpointed and not fits_in(cube, dim, micro, budget, checkpoint_steps=True):
        need = estimate(cube, dim, micro, checkpoint_steps=True)["activation_bytes"]
        reason = f"needs about {need / 2**20:.0f} MiB of activations even with checkpointed steps; {free / 2**20:.0f} MiB free"
        return {**dict.fromkeys(ROW_KEYS), "lattice": lattice, "cells": cube.cells, "skipped": reason}
    matmul_flops_per_s(device, matmul_size)  # wake the thread pool before the memory baseline
    with peak_memory(device) as peak:
        torch.manual_seed(0)
        model = Cube(cube, dim, checkpoint_steps=checkpointed).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(batch, dim, device=device)
        target = torch.randn(batch, dim, device=device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

        def train_step() -> None:
            # Samples never mix in the cube, so micro-batches with their gradients summed
            # (each loss weighted by its share of the batch) are exactly one batch-64 step.
            for start in range(0, batch, micro):
                chunk = slice(start, start + micro)
                with autocast:
                    loss = F.mse_loss(model(x[chunk]), target[chunk]) * (len(x[chunk]) / batch)
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(warmup):
            train_step()
        times, rates = [], []
        for _ in range(steps):
            # The reference matmul runs just before each step, so both see the same load
            # on a shared machine.
            rates.append(matmul_flops_per_s(device, matmul_size, repeats=1))
            synchronize(device)
            start = time.perf_counter()
            train_step()
            synchronize(device)
            times.append(time.perf_counter() - start)
    with FlopCounterMode(display=False) as counter:
        train_step()
    flops = counter.get_total_flops()
    step_s = statistics.median(times)
    return {
        "lattice": lattice,
        "samples_per_s": batch / step_s,
        "peak_mem_mb": peak.megabytes,
        "flops_per_step": flops,
        "matmul_flops_per_s": statistics.median(rates),
        "matmul_fraction": statistics.median(flops / t / r for t, r in zip(times, rates)),
        "achieved_flops_per_s": flops / step_s,
        "step_ms": 1000 * step_s,
        "estimated_flops_per_step": estimate(cube, dim, batch, checkpoint_steps=checkpointed)["flops_per_step"],
        "cells": cube.cells,
        "dim": dim,
        "batch": batch,
        "micro_batch": micro,
        "checkpointed": checkpointed,
        "memory_method": peak.method,
        "device": str(device),
        "precision": precision,
        "cube": {key: getattr(cube, key) for key in ("cell", "state_dim", "hidden_dim", "steps", "neighbourhood")},
    }


# The cube a device is calibrated on: the default cell at the smallest lattice the issue
# benchmarks, big enough to keep a GPU busy for a moment, quick on a CPU (~1 s).
CALIBRATION_LATTICE = (8, 8, 6)


def device_class(device: torch.device) -> str:
    """What kind of device this is, e.g. `cuda: NVIDIA H100 80GB HBM3` or `cpu: AMD EPYC (2 threads)`:
    machines of one class train at the same speed, so one measurement serves them all."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    return f"cpu: {model or 'unknown'} ({torch.get_num_threads()} threads)"


def calibrate(device: torch.device, rows: int = 288, batch: int = 64) -> dict:
    """The FLOP/s this device reaches over a whole epoch of the real training loop (steps,
    loss, optimizer and the epoch's evaluation) on the default cube and synthetic vectors:
    what the platform's pre-flight estimate divides a config's FLOPs per epoch by. Timing
    the loop rather than a bare step keeps the evaluation and bookkeeping in the estimate."""
    import tempfile

    from trainer.config import parse_config
    from trainer.events import Callback
    from trainer.loop import train
    from trainer.vectors import save_vector_pairs

    class EvalTimes(Callback):
        def __init__(self):
            self.times: list[float] = []

        def on_eval(self, event) -> None:
            self.times.append(time.perf_counter())

    dim = math.prod(CALIBRATION_LATTICE) * 1  # exact projection, one channel per cell
    generator = torch.Generator().manual_seed(0)
    questions = F.normalize(torch.randn(rows, dim, generator=generator), dim=-1)
    answers = F.normalize(questions + 0.3 * torch.randn(rows, dim, generator=generator), dim=-1)
    evals = EvalTimes()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "calibration.safetensors"
        save_vector_pairs(data, questions, answers)
        config = parse_config({
            "task": "dialogue", "seed": 0, "cube": {"lattice": list(CALIBRATION_LATTICE)},
            "train": {"epochs": 2, "batch_size": batch, "device": device.type, "val_fraction": 1 / 9},
            "data": {"path": str(data)}, "teachers": []})
        train(config, callbacks=[evals])  # in memory: no checkpoint files
    steps_per_epoch = math.ceil(rows * (1 - 1 / 9) / batch)
    epoch_s = evals.times[1] - evals.times[0]  # epoch 2 and its evaluation: epoch 1 warms up
    flops = estimate(config.cube, dim, batch)["flops_per_step"]
    return {"device_class": device_class(device), "flops_per_s": flops * steps_per_epoch / epoch_s,
            "lattice": "x".join(map(str, CALIBRATION_LATTICE)), "epoch_s": epoch_s, "steps_per_epoch": steps_per_epoch}


def add_prototype_comparison(row: dict) -> None:
    seconds_per_sample = PROTOTYPE_SECONDS_PER_STEP * PROTOTYPE_CELL["steps"] * FORWARD_BACKWARD_FACTOR
    row["prototype_samples_per_s"] = 1.0 / seconds_per_sample
    row["prototype_assumption"] = f"123 ms/step/sample forward × {PROTOTYPE_CELL['steps']} steps × {FORWARD_BACKWARD_FACTOR:g} for training"
    if row.get("samples_per_s"):
        row["speedup_vs_prototype"] = row["samples_per_s"] * seconds_per_sample


def matmul_flops_per_s(device: torch.device, n: int = 2048, repeats: int = 3) -> float:
    """Best of a few dense fp32 n³ matmuls: the rate this machine reaches right now."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up: thread pool, kernels
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


class _Peak:
    megabytes: Optional[float] = None
    method: str = ""


@contextmanager
def peak_memory(device: torch.device) -> Iterator[_Peak]:
    """Peak memory above the level when the block began, in MiB (see the module docstring)."""
    peak = _Peak()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield peak
        synchronize(device)
        peak.megabytes = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        peak.method = "torch.cuda.max_memory_allocated"
        return
    _release_free_heap()
    before = _status_kib("VmRSS")
    if _reset_peak_rss():
        yield peak
        peak.megabytes = (_status_kib("VmHWM") - before) / 1024
        peak.method = "peak RSS (VmHWM) delta"
        return
    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    highest, done = [start], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            highest[0] = max(highest[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
    peak.megabytes = (highest[0] - start) / 2**20
    peak.method = "sampled RSS delta (psutil, 5 ms)"


def _release_free_heap() -> None:
    """Give memory freed by earlier lattices back to the OS, so it is not in the baseline."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") > 0


def format_table(rows: list[dict], device: torch.device, args: argparse.Namespace) -> str:
    header = f"{'lattice':<10}{'cells':>7}{'samples/s':>11}{'step ms':>10}{'peak MiB':>10}{'GFLOP/step':>12}{'GFLOP/s':>9}{'matmul':>8}{'frac':>6}  notes"
    lines = [f"cube training step: batch {args.batch}, {args.precision}, {device}, median of {args.steps} steps", header]
    for row in rows:
        if row.get("skipped"):
            lines.append(f"{row['lattice']:<10}{row['cells']:>7}  skipped: {row['skipped']}")
            continue
        notes = ["checkpointed steps"] if row["checkpointed"] else []
        if "speedup_vs_prototype" in row:
            notes.append(f"{row['speedup_vs_prototype']:.0f}× the prototype ({row['prototype_samples_per_s']:.3f} samples/s)")
        lines.append(
            f"{row['lattice']:<10}{row['cells']:>7}{row['samples_per_s']:>11.1f}{row['step_ms']:>10.1f}"
            f"{row['peak_mem_mb']:>10.0f}{row['flops_per_step'] / 1e9:>12.2f}{row['achieved_flops_per_s'] / 1e9:>9.1f}"
            f"{row['matmul_flops_per_s'] / 1e9:>8.1f}{row['matmul_fraction']:>6.2f}  {', '.join(notes)}"
        )
    cube = rows[0].get("cube") if rows else None
    if cube:
        lines.append(f"cell: {cube}; GFLOP/s and matmul in 1e9 FLOP/s; memory: {rows[0]['memory_method']}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
