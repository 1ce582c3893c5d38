from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from webapp.datasets.models import Dataset
from webapp.teams.models import default_team_id, team_scope


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        INTERRUPTED = "interrupted"

    class Queue(models.TextChoices):
        CPU = "cpu"
        GPU = "gpu"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED)

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    # Who may see and act on the run (issue 5); by default the dataset's team.
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="runs")
    source_config = models.ForeignKey(
        "configs.Config", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs",
        help_text="The saved config this run started from, if any.",
    )
    # The resolved config the trainer ran with (defaults filled in, data.path = the dataset).
    source_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_runs",
        help_text="The run this one was forked or re-run from, if any.",
    )
    # The team's reference run (at most one per team): the comparison draws it as a baseline.
    is_baseline = models.BooleanField(default=False)
    config = models.JSONField(default=dict)
    config_yaml = models.TextField(blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queue = models.CharField(max_length=8, choices=Queue.choices, default=Queue.CPU)
    priority = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(0), MaxValueValidator(9)],
        help_text="0–9: within its queue, a higher priority starts first (ties: first submitted first).")
    task_id = models.CharField(max_length=64, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    device = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Why it ended, in words: the trainer's reason ("completed", "early stopping at step 40",
    # "time budget of 30 min reached at step 900") or who stopped it ("cancelled by carol", "pruned").
    end_reason = models.CharField(max_length=200, blank=True)
    summary = models.JSONField(default=dict, blank=True)  # latest value of each metric key
    last_step = models.PositiveIntegerField(default=0)  # the live cursor: pages backfill from it
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    tags = models.ManyToManyField("runs.Tag", blank=True, related_name="runs")
    notes = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)

    # The lease (issue 6): the worker training the run beats `heartbeat_at` every few seconds;
    # `attempt` counts claims, so a stale worker or a second delivery cannot write over a
    # newer attempt; `resume_from` is the checkpoint a re-queued run continues from.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    resume_from = models.CharField(max_length=500, blank=True, help_text="Checkpoint the next attempt resumes from.")

    # What reproduces the run.
    seed = models.BigIntegerField(null=True, blank=True)
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    teachers = models.JSONField(default=list, blank=True)  # [{name, path, revision, ...}]
    package_versions = models.JSONField(default=dict, blank=True)
    code_version = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["team"], condition=models.Q(is_baseline=True),
                                    name="run_one_baseline_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    def save(self, *args, **kwargs):
        if self.team_id is None and self.owner_id is not None:
            dataset_team = Dataset.objects.filter(pk=self.dataset_id).values_list("team_id", flat=True).first()
            self.team_id = dataset_team or default_team_id(self.owner_id)
        super().save(*args, **kwargs)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def tag_names(self) -> list[str]:
        return [tag.name for tag in self.tags.all()]

    def set_tags(self, names: list[str]) -> None:
        clean = sorted({name.strip()[:64] for name in names if name and name.strip()})
        self.tags.set([Tag.objects.get_or_create(name=name)[0] for name in clean])

    def queue_position(self) -> Optional[int]:
        """1 for the next run its queue will start, None once it is not queued."""
        if self.status != self.Status.QUEUED:
            return None
        ahead = Q(priority__gt=self.priority) | Q(priority=self.priority, pk__lt=self.pk)
        return Run.objects.filter(ahead, status=self.Status.QUEUED, queue=self.queue).count() + 1

    def time_to_start_s(self) -> Optional[float]:
        """Seconds from submission to the first worker picking the run up (None until then)."""
        if self.started_at is None or self.created_at is None:
            return None
        return round((self.started_at - self.created_at).total_seconds(), 3)

    @property
    def out_dir(self) -> Path:
        return Path(settings.CHECKPOINT_DIR) / f"run-{self.pk}"

    def status_message(self, time: Optional[float] = None) -> dict[str, Any]:
        """The websocket's `status` message for the run's current state."""
        import time as _time

        message = {
            "type": "status",
            "run": self.pk,
            "status": self.status,
            "time": time if time is not None else _time.time(),
            "last_step": self.last_step,
            "total_steps": self.total_steps,
        }
        if self.error:
            message["error"] = self.error
        if self.end_reason:
            message["reason"] = self.end_reason
        return message


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MetricPoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points")
    key = models.CharField(max_length=100)
    step = models.PositiveIntegerField()
    value = models.FloatField()
    time = models.FloatField(help_text="Unix seconds when the trainer emitted the value.")

    class Meta:
        constraints = [
            # Also the (run, key, step) index every metric query uses; replaying events after
            # a worker restart cannot double a point.
            models.UniqueConstraint(fields=["run", "key", "step"], name="metricpoint_run_key_step"),
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.step}={self.value}"


class Checkpoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500, help_text="Relative to CHECKPOINT_DIR.")
    size_bytes = models.BigIntegerField(default=0)
    best = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "path"], name="checkpoint_run_path")]

    def __str__(self) -> str:
        return f"{self.path} (step {self.step})"

    @property
    def absolute_path(self) -> Path:
        return Path(settings.CHECKPOINT_DIR) / self.path


class LogEntry(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_entries")
    time = models.FloatField()
    level = models.CharField(max_length=16)
    message = models.TextField()

    class Meta:
        ordering = ["id"]


def get_runs_for_user(user) -> models.QuerySet[Run]:
    """Every run ``user`` may see: those of the user's teams. The one access rule: pages,
    API, websocket and downloads all read through it."""
    if not user.is_authenticated:
        return Run.objects.none()
    return Run.objects.filter(team_scope(user))


def get_run_for_user(user, run_id) -> Run:
    """The run or ``Run.DoesNotExist`` (answer 404, never 403: ids of others stay hidden)."""
    return get_runs_for_user(user).get(pk=run_id)
