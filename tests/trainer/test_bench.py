"""`python -m trainer bench`: a smoke test on a tiny lattice (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from trainer.bench import ROW_KEYS, main, parse_lattices
from trainer.config import CubeConfig
from trainer.estimate import estimate

TINY = ["--matmul-size", "128", "--batch", "2", "--steps", "1", "--warmup", "0", "--set", "state_dim=4", "--set", "hidden_dim=8", "--set", "steps=2"]


def test_it_prints_one_json_object_per_lattice(capsys):
    assert main(["--json", "--lattices", "2x2x2,2x2x3", *TINY]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["lattice"] for row in rows] == ["2x2x2", "2x2x3"]
    for row in rows:
        assert set(ROW_KEYS) <= set(row)
        assert row["samples_per_s"] > 0 and row["matmul_flops_per_s"] > 0 and row["matmul_fraction"] > 0
        assert isinstance(row["peak_mem_mb"], float)
        # FlopCounterMode's count of the step is the analytic one.
        assert row["flops_per_step"] == row["estimated_flops_per_step"] > 0
    cube = CubeConfig(lattice=(2, 2, 3), state_dim=4, hidden_dim=8, steps=2)
    assert rows[1]["flops_per_step"] == estimate(cube, 12, 2)["flops_per_step"]


def test_it_compares_with_the_prototype(capsys):
    assert main(["--json", "--prototype", "--matmul-size", "128", "--batch", "2", "--steps", "1", "--warmup", "0"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["lattice"] == "8x8x6" and row["cube"]["state_dim"] == 8 and row["cube"]["steps"] == 10
    assert row["prototype_samples_per_s"] == pytest.approx(1 / 3.69)
    assert row["speedup_vs_prototype"] == pytest.approx(row["samples_per_s"] * 3.69)


def test_it_prints_a_table(capsys):
    assert main(["--lattices", "2x2x2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "2x2x2" in out


def test_it_rejects_a_malformed_lattice():
    assert parse_lattices("8x8x6, 4×4×4") == [(8, 8, 6), (4, 4, 4)]
    with pytest.raises(SystemExit):
        parse_lattices("8x8")


def test_calibration_measures_this_devices_training_rate_over_an_epoch_of_the_real_loop():
    import torch

    from trainer.bench import calibrate, device_class

    measured = calibrate(torch.device("cpu"), rows=144, batch=32)  # 4 steps per epoch
    assert measured["device_class"] == device_class(torch.device("cpu")) and measured["device_class"].startswith("cpu: ")
    assert measured["lattice"] == "8x8x6" and measured["steps_per_epoch"] == 4 and measured["epoch_s"] > 0
    # The rate is the analytic FLOPs of the epoch's steps over the epoch's measured time.
    flops = estimate(CubeConfig(lattice=[8, 8, 6]), 384, 32)["flops_per_step"]
    assert measured["flops_per_s"] == pytest.approx(4 * flops / measured["epoch_s"], rel=1e-6)
