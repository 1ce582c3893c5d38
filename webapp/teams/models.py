"""Teams own datasets, configs and runs; users see what their teams own.

Every user has a personal team (made when the user is created, or by the data migration for
users older than teams) and may belong to more. ``team_scope`` is the one rule the apps'
access helpers (``get_runs_for_user`` and friends) filter with.
"""

from __future__ import annotations

from typing import Optional

from django.conf import settings
from django.db import models, transaction


class Team(models.Model):
    name = models.CharField(max_length=200)
    # Set on the team made for one user; other teams are shared and have none.
    personal_for = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                        related_name="personal_team")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.personal_for_id is not None


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team_id", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_team_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def get_teams_for_user(user) -> models.QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def get_team_for_user(user, team_id) -> Team:
    """The team or ``Team.DoesNotExist`` (404 for teams one is not in)."""
    return get_teams_for_user(user).get(pk=team_id)


def team_scope(user, owner_field: str = "owner") -> models.Q:
    """Rows of the user's teams; a row without a team (made before teams, or by a bulk
    insert that skipped ``save``) stays visible to its owner alone."""
    teams = Membership.objects.filter(user=user).values("team_id")
    return models.Q(team__in=teams) | models.Q(team__isnull=True, **{owner_field: user})


def ensure_personal_team(user) -> Team:
    with transaction.atomic():
        team, created = Team.objects.get_or_create(personal_for=user, defaults={"name": user.get_username()})
        if created:
            Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
    return team


def default_team(user) -> Team:
    """The team a new object goes to when none is named: the personal team, else the first
    team joined (a personal team is made when the user has none at all)."""
    personal = Team.objects.filter(personal_for=user, memberships__user=user).first()
    if personal is not None:
        return personal
    membership = Membership.objects.filter(user=user).select_related("team").order_by("created_at", "id").first()
    return membership.team if membership is not None else ensure_personal_team(user)


def default_team_id(user_id: int) -> Optional[int]:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id).first()
    return default_team(user).pk if user is not None else None


def give_new_user_a_personal_team(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        ensure_personal_team(instance)
