"""Writes to teams and memberships, shared by the pages and the REST API.

Only a team's owners (its admins) change its members; a team always keeps one owner; a
personal team has its user alone. Each write runs in one transaction and locks the team row,
so two owners demoting each other at once cannot leave the team without one.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction

from .models import Membership, Team

ADMIN = Membership.Role.OWNER


class NotTeamAdmin(PermissionDenied):
    """The actor is in the team but not one of its owners (Django and DRF answer 403)."""


class MembershipRejected(ValueError):
    """A change that cannot be made, with the form/API field it concerns."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class NotAMember(MembershipRejected):
    """The username names nobody in the team (the API answers 404 for its member URL)."""


def is_team_admin(user, team: Team) -> bool:
    return team.memberships.filter(user_id=user.pk, role=ADMIN).exists()


def require_team_admin(user, team: Team) -> None:
    if not is_team_admin(user, team):
        raise NotTeamAdmin(f"Only the owners of “{team.name}” change its members.")


def create_team(user, name: str) -> Team:
    """A shared team with ``user`` as its first owner."""
    name = (name or "").strip()
    if not name:
        raise MembershipRejected("name", "A team needs a name.")
    max_length = Team._meta.get_field("name").max_length
    if len(name) > max_length:
        raise MembershipRejected("name", f"At most {max_length} characters.")
    with transaction.atomic():
        team = Team.objects.create(name=name)
        Membership.objects.create(team=team, user=user, role=ADMIN)
    return team


def add_member(actor, team: Team, username: str, role: str = Membership.Role.MEMBER) -> Membership:
    _check_role(role)
    with transaction.atomic():
        team = _lock_as_admin(actor, team)
        if team.is_personal:
            raise MembershipRejected("username", f"“{team.name}” is a personal team and has no other members: "
                                                 "create a shared team instead.")
        user = _user_named(username)
        existing = team.memberships.filter(user=user).first()
        if existing is not None:
            raise MembershipRejected("username", f"{username} is already in “{team.name}” (as {existing.role}); "
                                                 "change the role instead.")
        return Membership.objects.create(team=team, user=user, role=role)


def change_role(actor, team: Team, username: str, role: str) -> Membership:
    _check_role(role)
    with transaction.atomic():
        team = _lock_as_admin(actor, team)
        membership = _membership(team, username)
        if membership.role == ADMIN and role != ADMIN:
            _refuse_last_admin(team, membership, f"{username} is the last owner of “{team.name}”: "
                                                 "make another member owner first.")
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(actor, team: Team, username: str) -> None:
    with transaction.atomic():
        team = _lock_as_admin(actor, team)
        membership = _membership(team, username)
        if membership.role == ADMIN:
            _refuse_last_admin(team, membership, f"{username} is the last owner of “{team.name}”: "
                                                 "make another member owner first.")
        membership.delete()


def _lock_as_admin(actor, team: Team) -> Team:
    """The team row, locked until commit (serialises membership changes), once the actor is
    known to be one of its owners."""
    locked = Team.objects.select_for_update().get(pk=team.pk)
    require_team_admin(actor, locked)
    return locked


def _refuse_last_admin(team: Team, membership: Membership, message: str) -> None:
    if not team.memberships.filter(role=ADMIN).exclude(pk=membership.pk).exists():
        raise MembershipRejected("username", message)


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise MembershipRejected("role", f"“{role}” is not a role; choose one of: {', '.join(Membership.Role.values)}.")


def _user_named(username: str):
    username = (username or "").strip()
    if not username:
        raise MembershipRejected("username", "Give the username of the person to add.")
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise MembershipRejected("username", f"No user is named “{username}”.") from None


def _membership(team: Team, username: str) -> Membership:
    membership = team.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise NotAMember("username", f"{username} is not a member of “{team.name}”.")
    return membership
