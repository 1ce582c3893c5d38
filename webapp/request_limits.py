"""An ASGI middleware that refuses oversize request bodies before Django stores them.

Django's ASGI handler reads the whole body into a spooled temporary file before any view,
middleware or permission check runs, and Daphne sets no limit: without this, anyone (even
signed out, e.g. a POST to /accounts/login/) could fill the disk. The limit:

* ``multipart/form-data`` (dataset uploads): ``CUBELAB_REQUEST_MAX_BYTES``, the dataset
  upload limit plus a margin for the multipart framing and form fields;
* any other body (JSON, forms): ``DATA_UPLOAD_MAX_MEMORY_SIZE``, which Django (or DRF's
  parsers) would hold in memory anyway.

A declared ``Content-Length`` over the limit is answered 413 without reading the body; a body
without one (or lying about it) is counted as it streams and cut off with 413 once it passes
the limit. Websockets and lifespan events pass through untouched.
"""

from __future__ import annotations

import json
from typing import Optional

from django.conf import settings
from django.core.exceptions import RequestAborted


class BodyTooLarge(RequestAborted):
    """Raised from ``receive`` once a streamed body passes the limit. A RequestAborted, so
    Django's handler closes its temporary file and returns without a response."""


def body_limit(scope) -> tuple[int, str]:
    """(bytes, setting name) that bound this request's body."""
    if content_type(scope).startswith("multipart/form-data"):
        return settings.CUBELAB_REQUEST_MAX_BYTES, "CUBELAB_REQUEST_MAX_BYTES"
    if settings.DATA_UPLOAD_MAX_MEMORY_SIZE is None:  # Django's "no limit": the upload limit still holds
        return settings.CUBELAB_REQUEST_MAX_BYTES, "CUBELAB_REQUEST_MAX_BYTES"
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "DATA_UPLOAD_MAX_MEMORY_SIZE"


def content_type(scope) -> str:
    return _header(scope, b"content-type").lower()


def declared_length(scope) -> Optional[int]:
    """The Content-Length header as an int; None when absent or unreadable."""
    value = _header(scope, b"content-length").strip()
    return int(value) if value.isdigit() else None


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def too_large_message(limit: int, setting: str) -> str:
    size = f"{limit / 1024 ** 2:.1f} MiB" if limit >= 1024 ** 2 else f"{limit / 1024:.1f} KiB"
    return f"request body too large: the limit is {limit:,} bytes ({size}, {setting}); nothing was stored"


async def send_too_large(send, limit: int, setting: str) -> None:
    body = json.dumps({"detail": too_large_message(limit, setting), "limit_bytes": limit}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read: do not reuse the connection
    ]})
    await send({"type": "http.response.body", "body": body})


class RequestBodyLimit:
    """Wraps an ASGI app (Django's); the limits are read from settings on each request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, setting = body_limit(scope)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            return await send_too_large(send, limit, setting)

        received, overflowed, started = 0, False, False

        async def counted_receive():
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflowed = True
                    raise BodyTooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:  # an app that lets it through (Django's handler swallows it)
            pass
        if overflowed and not started:
            await send_too_large(send, limit, setting)
