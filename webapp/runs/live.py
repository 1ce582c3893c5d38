"""The one place that knows channel group names and how run events reach websockets.

The worker's bridge calls ``send_to_run``; the consumer joins ``run_group(run_id)``. Every
message is a plain dict with ``type`` (status | step | eval | checkpoint | log), ``run`` and
``time``; on the channel layer it travels as ``{"type": "run.event", "event": message}`` so
the consumer's ``run_event`` handler forwards it unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def run_group(run_id: int) -> str:
    return f"run-{int(run_id)}"


def send_to_run(run_id: int, message: dict[str, Any]) -> bool:
    """Push one message to everyone watching the run. Never raises: live updates are a
    convenience, the database is the record (pages backfill from the REST API)."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.event", "event": message})
        return True
    except Exception as error:  # a Redis hiccup must not fail a training run
        # One line per failed push, not a traceback: while Redis is away every event fails.
        log.warning("could not push %s for run %s to the channel layer: %s: %s",
                    message.get("type"), run_id, type(error).__name__, error)
        return False
