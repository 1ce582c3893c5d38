"""Read and record device speeds: what pre-flight estimates divide by, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from django.conf import settings

from .models import DeviceSpeed


@dataclass(frozen=True)
class QueueSpeed:
    flops_per_s: float
    source: str  # shown next to the estimate: measured on what, or which setting was assumed


def speed_for_queue(queue: str) -> Optional[QueueSpeed]:
    """The slowest device class measured on ``queue`` (a run may land on any of its workers,
    so the estimate should not promise the fastest), else the configured assumption."""
    slowest = DeviceSpeed.objects.filter(queue=queue).order_by("flops_per_s").first()
    if slowest is not None:
        return QueueSpeed(slowest.flops_per_s, f"measured on {slowest.device_class} "
                                               f"({slowest.flops_per_s / 1e9:.1f} GFLOP/s, {slowest.measured_at:%Y-%m-%d})")
    assumed = settings.CUBELAB_QUEUE_FLOPS.get(queue)
    if not assumed:
        return None
    setting = "CUBELAB_GPU_GFLOPS" if queue == "gpu" else "CUBELAB_CPU_GFLOPS"
    return QueueSpeed(assumed, f"assumed {assumed / 1e9:g} GFLOP/s ({setting}); no worker of this queue has measured yet")


def is_measured(queue: str, device_class: str) -> bool:
    return DeviceSpeed.objects.filter(queue=queue, device_class=device_class).exists()


def record_speed(queue: str, measured: dict, host: str = "") -> DeviceSpeed:
    """Store a `trainer.bench.calibrate` result for ``queue`` (a re-measurement replaces it)."""
    speed, _ = DeviceSpeed.objects.update_or_create(
        queue=queue, device_class=measured["device_class"][:200],
        defaults={"flops_per_s": float(measured["flops_per_s"]), "lattice": measured["lattice"][:32], "host": host[:255]},
    )
    return speed
