"""API tokens: one per user (DRF's authtoken), created, rotated and revoked by its owner.

Rotating replaces the key, so the old one stops working at once; the full key is shown only
in the answer that created it (pages and API list a prefix afterwards).
"""

from __future__ import annotations

from typing import Optional

from django.db import transaction
from rest_framework.authtoken.models import Token

PREFIX_CHARS = 6


def get_token(user) -> Optional[Token]:
    return Token.objects.filter(user=user).first()


def issue_token(user) -> Token:
    """A fresh token for ``user``; any previous key is revoked."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def revoke_token(user) -> bool:
    """True when a token existed (and no longer does)."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)


def describe(token: Optional[Token], *, with_key: bool = False) -> dict:
    if token is None:
        return {"exists": False, "prefix": None, "created": None}
    info = {"exists": True, "prefix": token.key[:PREFIX_CHARS], "created": token.created}
    return info | ({"key": token.key} if with_key else {})
