"""The run websocket, driven through the real ASGI stack (origin check, session, token)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework.authtoken.models import Token

from webapp.asgi import application
from webapp.runs import live
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def run_async(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def make_run(user, make_dataset, **fields):
    return Run.objects.create(name="live", owner=user, dataset=make_dataset(user), config={}, **fields)


def communicator(run_id, headers=()):
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=list(headers))


def token_header(user):
    return (b"authorization", f"Token {Token.objects.get_or_create(user=user)[0].key}".encode())


def test_it_closes_4401_without_credentials(alice, make_dataset):
    run = make_run(alice, make_dataset)

    async def scenario():
        ws = communicator(run.pk)
        await ws.connect()
        closed = await ws.receive_output()
        await ws.disconnect()
        return closed

    assert run_async(scenario()) == {"type": "websocket.close", "code": 4401}


def test_it_closes_4404_for_a_run_of_someone_else(alice, bob, make_dataset):
    run = make_run(bob, make_dataset)
    header = token_header(alice)

    async def scenario():
        ws = communicator(run.pk, [header])
        await ws.connect()
        return await ws.receive_output()

    assert run_async(scenario())["code"] == 4404


def test_it_sends_the_current_state_then_group_events(alice, make_dataset):
    run = make_run(alice, make_dataset, status=Run.Status.RUNNING, last_step=7)
    header = token_header(alice)

    async def scenario():
        ws = communicator(run.pk, [header])
        connected, _ = await ws.connect()
        first = await ws.receive_json_from()
        event = {"type": "step", "run": run.pk, "time": 1.5, "step": 8, "epoch": 0, "metrics": {"train/loss": 0.3},
                 "points": [{"step": 8, "epoch": 0, "time": 1.5, "metrics": {"train/loss": 0.3}}]}
        sent = await sync_to_async(live.send_to_run)(run.pk, event)
        second = await ws.receive_json_from()
        await ws.disconnect()
        return connected, first, sent, event, second

    connected, first, sent, event, second = run_async(scenario())
    assert connected and sent
    assert first["type"] == "status" and first["run"] == run.pk and first["status"] == "running"
    assert first["last_step"] == 7 and isinstance(first["time"], float)
    assert second == event


def test_it_accepts_the_session_cookie(alice, make_dataset, client):
    run = make_run(alice, make_dataset)
    client.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def scenario():
        ws = communicator(run.pk, [(b"cookie", cookie), (b"origin", b"http://localhost")])
        await ws.connect()
        message = await ws.receive_json_from()
        await ws.disconnect()
        return message

    assert run_async(scenario())["status"] == "queued"


def test_it_rejects_a_foreign_origin(alice, make_dataset):
    run = make_run(alice, make_dataset)
    header = token_header(alice)

    async def scenario():
        ws = communicator(run.pk, [header, (b"origin", b"http://evil.example")])
        connected, _ = await ws.connect()
        return connected

    assert run_async(scenario()) is False


def test_it_answers_malformed_messages_without_closing(alice, make_dataset):
    run = make_run(alice, make_dataset)
    header = token_header(alice)

    async def scenario():
        ws = communicator(run.pk, [header])
        await ws.connect()
        await ws.receive_json_from()
        replies = []
        for text in ("not json", json.dumps([1, 2]), json.dumps({"type": "launch"}), json.dumps({"type": "ping"})):
            await ws.send_to(text_data=text)
            replies.append(await ws.receive_json_from())
        await ws.send_to(bytes_data=b"\xff\xfe")
        replies.append(await ws.receive_json_from())
        await ws.disconnect()
        return replies

    replies = run_async(scenario())
    assert [r["type"] for r in replies] == ["error", "error", "error", "pong", "error"]
    assert "launch" in replies[2]["message"]
