"""Websocket authentication by ``Authorization: Token <key>`` (DRF's authtoken).

Runs inside AuthMiddlewareStack: when the session already gave a user, it is kept; a token
header, when present and valid, wins. A bad token leaves the user anonymous, and the
consumer closes with 4401.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser


def token_from_headers(headers) -> str | None:
    for name, value in headers or []:
        if name.lower() == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    return None


@database_sync_to_async
def user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return AnonymousUser()
    return token.user if token.user.is_active else AnonymousUser()


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        key = token_from_headers(scope.get("headers"))
        if key is not None:
            scope = dict(scope, user=await user_for_token(key))
        return await super().__call__(scope, receive, send)


class BrowserOriginValidator:
    """Like channels' AllowedHostsOriginValidator, but a connection without an ``Origin``
    header (a script, not a browser) is let through: only browsers carry ambient cookies
    across sites, and they always send ``Origin``. Such clients then need a token."""

    def __init__(self, application):
        from channels.security.websocket import AllowedHostsOriginValidator

        self.application = application
        self.validator = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        has_origin = any(name == b"origin" for name, _ in scope.get("headers", []))
        if not has_origin:
            return await self.application(scope, receive, send)
        return await self.validator(scope, receive, send)
