"""Each worker measures how fast its device trains a cube, once per device class and queue.

Pre-flight estimates divide a config's FLOPs per step by that rate (webapp.devices). The
measurement is a few training steps of the default cube (`trainer.bench.calibrate`, ~1 s on
a CPU) run when the worker comes up, before it takes its first run, so nothing else competes
for the device while it is timed. A worker whose device class is already measured for its
queues measures nothing.
"""

from __future__ import annotations

import logging

from celery.signals import worker_ready
from django.conf import settings

log = logging.getLogger(__name__)


def calibrate_worker(queues: list[str], host: str = "") -> list:
    """Measure this machine's device for each of ``queues`` not yet measured; the rows written."""
    import torch

    from trainer.bench import calibrate, device_class
    from webapp.devices.speeds import is_measured, record_speed

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    missing = [queue for queue in queues if not is_measured(queue, device_class(device))]
    if not missing:
        return []
    measured = calibrate(device)
    log.info("calibrated %s: %.1f GFLOP/s training the default cube", measured["device_class"],
             measured["flops_per_s"] / 1e9)
    return [record_speed(queue, measured, host) for queue in missing]


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    if not getattr(settings, "CUBELAB_CALIBRATE_DEVICES", True) or sender is None:
        return
    try:
        queues = sorted(sender.app.amqp.queues.consume_from)
        calibrate_worker(queues, getattr(sender, "hostname", "") or "")
    except Exception:  # an estimate is a convenience: never keep a worker from serving runs
        log.exception("device calibration failed; pre-flight estimates keep the configured speed")
