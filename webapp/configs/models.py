from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.teams.models import default_team_id, team_scope


class Config(models.Model):
    """A saved, validated training config. Forks keep a link to the config they came from."""

    name = models.CharField(max_length=200)
    body = models.TextField(help_text="The YAML as the user wrote it.")
    data = models.JSONField(default=dict, help_text="The validated config, resolved with defaults.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="configs")
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="configs")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.team_id is None and self.owner_id is not None:
            self.team_id = default_team_id(self.owner_id)
        super().save(*args, **kwargs)


def get_configs_for_user(user) -> models.QuerySet[Config]:
    """Every config ``user`` may see: those of the user's teams."""
    if not user.is_authenticated:
        return Config.objects.none()
    return Config.objects.filter(team_scope(user))


def get_config_for_user(user, config_id) -> Config:
    return get_configs_for_user(user).get(pk=config_id)
