"""Oversize request bodies get 413 from webapp.asgi before Django stores anything.

Each test calls the real ASGI application (webapp.asgi.application) with a fake ``receive``
that hands out the body chunk by chunk and counts what was read.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import async_to_sync

from tests.conftest import dialogue_jsonl
from webapp.datasets.models import Dataset

# The real ASGI handler closes the database connection at the end of each request (Django's
# request_finished signal; the test client disconnects it, a raw ASGI call does not). On
# PostgreSQL that ends a test wrapped in one transaction, so these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 8 * 1024
CHUNK = 1024


class Body:
    """An ASGI body as ``http.request`` messages; ``pulled`` counts the messages read."""

    def __init__(self, data: bytes, chunk: int = CHUNK):
        self.chunks = [data[start:start + chunk] for start in range(0, len(data), chunk)] or [b""]
        self.pulled = 0

    async def receive(self):
        if self.pulled < len(self.chunks):
            self.pulled += 1
            return {"type": "http.request", "body": self.chunks[self.pulled - 1],
                    "more_body": self.pulled < len(self.chunks)}
        await asyncio.Event().wait()  # Django listens for a disconnect until the response is sent


def call(path: str, body: Body, headers: dict[str, str], method: str = "POST") -> tuple[int, dict, bytes]:
    """(status, headers, body) of the real ASGI app's answer."""
    from webapp.asgi import application

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    sent = []

    async def send(message):
        sent.append(message)

    async_to_sync(application)(scope, body.receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    content = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, content


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def token(alice):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=alice).key


@pytest.fixture
def small_limit(settings):
    settings.CUBELAB_REQUEST_MAX_BYTES = LIMIT
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT


def upload(token: str, rows: int, content_length: bool = True) -> tuple[Body, tuple[int, dict, bytes]]:
    data, kind = multipart({"name": "faq", "kind": "dialogue"}, "faq.jsonl", dialogue_jsonl(rows))
    headers = {"Authorization": f"Token {token}", "Content-Type": kind, "Accept": "application/json"}
    if content_length:
        headers["Content-Length"] = str(len(data))
    body = Body(data)
    return body, call("/api/v1/datasets/", body, headers)


def stored_files(settings) -> list:
    media = settings.MEDIA_ROOT
    return [path for path in media.rglob("*") if path.is_file()] if media.exists() else []


def test_it_accepts_an_upload_within_the_limit(token, small_limit, settings):
    body, (status, _, content) = upload(token, rows=24)  # about 2 KB
    assert status == 201, content
    assert Dataset.objects.get().rows == 24 and len(stored_files(settings)) == 1


def test_it_refuses_a_declared_oversize_body_without_reading_it(token, small_limit, settings):
    body, (status, headers, content) = upload(token, rows=400)  # about 30 KB
    assert status == 413 and headers["content-type"] == "application/json"
    detail = json.loads(content)["detail"]
    assert f"{LIMIT:,} bytes" in detail and "CUBELAB_REQUEST_MAX_BYTES" in detail
    assert body.pulled == 0
    assert Dataset.objects.count() == 0 and stored_files(settings) == []


def test_it_cuts_off_a_streamed_body_without_content_length(token, small_limit, settings):
    body, (status, _, content) = upload(token, rows=400, content_length=False)
    assert status == 413 and "CUBELAB_REQUEST_MAX_BYTES" in json.loads(content)["detail"]
    assert body.pulled == LIMIT // CHUNK + 1 < len(body.chunks)  # stopped at the limit, not at the end
    assert Dataset.objects.count() == 0 and stored_files(settings) == []


def test_it_cuts_off_a_body_that_lies_about_its_length(token, small_limit, settings):
    data, kind = multipart({"name": "faq", "kind": "dialogue"}, "faq.jsonl", dialogue_jsonl(400))
    body = Body(data)
    status, _, _ = call("/api/v1/datasets/", body, {"Authorization": f"Token {token}", "Content-Type": kind,
                                                     "Content-Length": "100"})
    assert status == 413 and body.pulled == LIMIT // CHUNK + 1
    assert Dataset.objects.count() == 0


def test_it_limits_other_bodies_to_data_upload_max_memory_size(db, settings):
    settings.CUBELAB_REQUEST_MAX_BYTES = 10 * LIMIT
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT  # a signed-out POST to the sign-in page
    body = Body(b"username=x&password=" + b"a" * (4 * LIMIT))
    status, _, content = call("/accounts/login/", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and "DATA_UPLOAD_MAX_MEMORY_SIZE" in json.loads(content)["detail"]
    assert body.pulled == LIMIT // CHUNK + 1


def test_the_default_limit_is_the_dataset_limit_plus_a_margin():
    from django.conf import settings

    assert 0 < settings.CUBELAB_REQUEST_MAX_BYTES - settings.CUBELAB_DATASET_MAX_BYTES <= 2 * 1024 * 1024


def test_websockets_pass_through_untouched():
    from webapp.request_limits import RequestBodyLimit

    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], receive, send))

    receive, send = object(), object()
    async_to_sync(RequestBodyLimit(app))({"type": "websocket", "headers": [(b"content-length", b"999999999")]},
                                         receive, send)
    assert seen == [("websocket", receive, send)]
