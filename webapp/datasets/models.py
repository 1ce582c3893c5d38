from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models

from webapp.teams.models import default_team_id, team_scope

# Suffixes the trainer's text reader knows; any other is dropped (the reader then goes by
# the first line), so a stored file always reads as it did when it was validated.
ALLOWED_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".txt"}


def safe_suffix(filename: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix in ALLOWED_SUFFIXES else ""


def dataset_upload_to(instance: "Dataset", filename: str) -> str:
    # Never trust the client's file name for the path (traversal, collisions): a fresh
    # uuid plus a whitelisted suffix. The original name is kept in `original_name`.
    return f"datasets/{uuid.uuid4().hex}{safe_suffix(filename)}"


class Dataset(models.Model):
    class Kind(models.TextChoices):
        DIALOGUE = "dialogue"
        CORPUS = "corpus"

    name = models.CharField(max_length=200)
    file = models.FileField(upload_to=dataset_upload_to, max_length=300)
    original_name = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    rows = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    preview = models.JSONField(default=list, blank=True)  # first rows, as the reader saw them
    warnings = models.JSONField(default=list, blank=True)  # [{line, message}], non-fatal
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="datasets")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.team_id is None and self.owner_id is not None:
            self.team_id = default_team_id(self.owner_id)
        super().save(*args, **kwargs)

    @property
    def path(self) -> Path:
        return Path(self.file.path)


def get_datasets_for_user(user) -> models.QuerySet[Dataset]:
    """Every dataset ``user`` may see: those of the user's teams. The one access rule."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    return Dataset.objects.filter(team_scope(user))


def get_dataset_for_user(user, dataset_id) -> Dataset:
    """The dataset or ``Dataset.DoesNotExist`` (callers answer 404, never 403)."""
    return get_datasets_for_user(user).get(pk=dataset_id)
