"""Websocket ``/ws/runs/<id>/``: the current state on connect, then the run's live events.

Close codes: 4401 not authenticated, 4404 no such run for this user (foreign runs look
missing, as in the REST API). Clients may send ``{"type": "ping"}`` (answered ``pong``) or
``{"type": "status"}`` (answered with the current state); anything else gets an ``error``
message and the connection stays open.
"""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from .live import run_group
from .models import Run, get_run_for_user

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class RunConsumer(AsyncWebsocketConsumer):
    run_id: int
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        # Accept first: a custom close code only exists once the socket is open.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self._visible(user):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        # Join before reading the state, so nothing emitted in between is missed.
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self._send_status()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, UnicodeDecodeError):
            await self._error("messages must be JSON objects such as {\"type\": \"ping\"}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong", "run": self.run_id}))
        elif kind == "status":
            await self._send_status()
        else:
            await self._error(f"unknown message type {kind!r}; expected `ping` or `status`")

    async def run_event(self, event: dict) -> None:
        """A message from live.send_to_run: forward it unchanged."""
        await self.send(text_data=json.dumps(event["event"]))

    async def _send_status(self) -> None:
        message = await self._status()
        await self.send(text_data=json.dumps(message))

    async def _error(self, text: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "run": self.run_id, "message": text}))

    @database_sync_to_async
    def _visible(self, user) -> bool:
        try:
            get_run_for_user(user, self.run_id)
        except Run.DoesNotExist:
            return False
        return True

    @database_sync_to_async
    def _status(self) -> dict:
        return Run.objects.get(pk=self.run_id).status_message()
