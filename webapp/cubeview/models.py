"""The cache of what the cube view and the projector draw.

One row per (checkpoint, kind, parameters): ``key`` is their digest, unique, so two pages
asking for the same view at once share one computation. The worker fills ``result``
(JSON, a few MB at most: the cube view samples at most 20k cells per step).
"""

from __future__ import annotations

import hashlib
import json

from django.db import models


class Inspection(models.Model):
    class Kind(models.TextChoices):
        CUBE = "cube"
        PROJECTOR = "projector"

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="inspections")
    checkpoint = models.ForeignKey("runs.Checkpoint", on_delete=models.CASCADE, related_name="inspections")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    params = models.JSONField(default=dict)
    key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} of run #{self.run_id} at {self.checkpoint.path} {self.params} ({self.status})"

    @staticmethod
    def key_for(checkpoint_id: int, checkpoint_path: str, kind: str, params: dict) -> str:
        text = json.dumps([checkpoint_id, checkpoint_path, kind, params], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        answer = {"status": self.status, "kind": self.kind, "params": self.params,
                  "checkpoint_step": self.checkpoint.step}
        if self.status == self.Status.READY:
            answer["result"] = self.result
        elif self.status == self.Status.FAILED:
            answer["error"] = self.error
        return answer
