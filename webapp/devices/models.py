"""How fast each kind of device trains a cube, measured by the workers that have one.

Pre-flight estimates (time per epoch in the new-run and new-sweep forms) divide a config's
FLOPs per step by the rate measured here for the run's queue, instead of a configured guess.
One row per (queue, device class): machines of one class train at the same speed, so a
worker measures only when its class has no row yet for its queue.
"""

from __future__ import annotations

from django.db import models


class DeviceSpeed(models.Model):
    queue = models.CharField(max_length=8, db_index=True)
    device_class = models.CharField(max_length=200)  # e.g. "cuda: NVIDIA H100 80GB HBM3"
    flops_per_s = models.FloatField()  # a full training step of the calibration cube
    lattice = models.CharField(max_length=32)  # the calibration cube, e.g. "8x8x6"
    host = models.CharField(max_length=255, blank=True)  # the worker that measured it
    measured_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "device_class"], name="one_speed_per_queue_device")]
        ordering = ["-measured_at"]

    def __str__(self) -> str:
        return f"{self.queue}: {self.device_class} {self.flops_per_s / 1e9:.1f} GFLOP/s"
