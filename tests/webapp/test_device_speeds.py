"""Pre-flight time estimates come from the speed a worker measured on its device class."""

import pytest

from webapp.devices.models import DeviceSpeed
from webapp.devices.speeds import record_speed, speed_for_queue

MEASURED = {"device_class": "cpu: Test CPU (2 threads)", "flops_per_s": 30e9, "lattice": "8x8x6", "step_ms": 300.0}

pytestmark = pytest.mark.django_db


def test_without_a_measurement_the_configured_speed_is_assumed_and_says_so(settings):
    speed = speed_for_queue("cpu")
    assert speed.flops_per_s == settings.CUBELAB_QUEUE_FLOPS["cpu"]
    assert speed.source.startswith("assumed") and "CUBELAB_CPU_GFLOPS" in speed.source


def test_the_slowest_measured_device_class_of_the_queue_is_used():
    record_speed("cpu", MEASURED, host="worker-a")
    record_speed("cpu", {**MEASURED, "device_class": "cpu: Faster CPU (8 threads)", "flops_per_s": 90e9}, host="b")
    record_speed("gpu", {**MEASURED, "device_class": "cuda: Some GPU", "flops_per_s": 9e12}, host="c")
    speed = speed_for_queue("cpu")
    assert speed.flops_per_s == 30e9 and speed.source.startswith("measured on cpu: Test CPU (2 threads) (30.0 GFLOP/s")
    assert speed_for_queue("gpu").flops_per_s == 9e12


def test_a_new_measurement_of_the_same_class_replaces_the_old_one():
    record_speed("cpu", MEASURED)
    record_speed("cpu", {**MEASURED, "flops_per_s": 40e9})
    assert list(DeviceSpeed.objects.values_list("flops_per_s", flat=True)) == [40e9]


def test_a_worker_measures_once_per_device_class_and_queue(monkeypatch):
    import trainer.bench

    from worker.calibration import calibrate_worker

    calls = []
    monkeypatch.setattr(trainer.bench, "device_class", lambda device: MEASURED["device_class"])
    monkeypatch.setattr(trainer.bench, "calibrate", lambda device: calls.append(device) or MEASURED)
    assert [row.queue for row in calibrate_worker(["cpu", "gpu"], host="w1")] == ["cpu", "gpu"]
    assert calibrate_worker(["cpu"], host="w2") == []  # this class is measured for this queue: nothing to do
    assert len(calls) == 1


def test_the_estimate_divides_by_the_measured_speed_and_names_it(alice, make_dataset):
    from trainer.config import parse_config
    from webapp.runs.preflight import preflight

    config = parse_config({"task": "dialogue", "seed": 0, "cube": {"lattice": [8, 8, 6]},
                           "train": {"epochs": 1, "batch_size": 32, "val_fraction": 0.5}, "data": {"path": "x.jsonl"},
                           "teachers": [{"name": "minilm"}]})
    assumed = preflight(config, "cpu", dim=384, rows=128)
    record_speed("cpu", MEASURED)
    measured = preflight(config, "cpu", dim=384, rows=128)
    steps = 2  # 64 training rows / 32
    assert measured["seconds_per_epoch"] == pytest.approx(steps * measured["flops_per_step"] / 30e9, rel=1e-3)
    assert measured["seconds_per_epoch"] != assumed["seconds_per_epoch"]
    assert measured["speed_source"].startswith("measured on cpu: Test CPU")
