"""A sweep: a base config, a search space over its keys and a budget of trials; each trial is
an ordinary Run (tagged ``sweep:<id>``) linked here with the parameters Optuna sampled."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.teams.models import team_scope

REASON_LENGTH = 1000


class Sweep(models.Model):
    class Method(models.TextChoices):
        GRID = "grid"
        RANDOM = "random"
        TPE = "tpe"

    class Direction(models.TextChoices):
        MAXIMIZE = "maximize"
        MINIMIZE = "minimize"

    class Status(models.TextChoices):
        RUNNING = "running"  # queues trials as others finish
        STOPPING = "stopping"  # stopped by a user: queues nothing more, waits for running trials
        FINISHED = "finished"  # budget spent (or grid exhausted), every trial ended
        STOPPED = "stopped"  # stopped by a user, every trial ended

    ACTIVE = (Status.RUNNING, Status.STOPPING)

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sweeps")
    team = models.ForeignKey("teams.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="sweeps")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="sweeps")
    base_config_yaml = models.TextField()
    search_space_yaml = models.TextField()
    search_space = models.JSONField(default=dict)
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.TPE)
    metric = models.CharField(max_length=100, default="val/qa_cosine")
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.MAXIMIZE)
    budget = models.PositiveIntegerField(default=10, help_text="Trials to run in all.")
    parallelism = models.PositiveIntegerField(default=1, help_text="Trials queued or running at once.")
    queue = models.CharField(max_length=8, default="cpu")
    pruning = models.BooleanField(default=True, help_text="Median pruning on the metric's intermediate values.")
    pruner_startup_trials = models.PositiveIntegerField(default=5)
    pruner_warmup_steps = models.PositiveIntegerField(default=0)
    seed = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (sweep #{self.pk})"

    @property
    def tag(self) -> str:
        return f"sweep:{self.pk}"


class Trial(models.Model):
    class State(models.TextChoices):
        RUNNING = "running"  # its run is queued or running
        COMPLETE = "complete"
        PRUNED = "pruned"
        FAIL = "fail"  # failed, cancelled by hand, or ended without the metric

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    run = models.OneToOneField("runs.Run", null=True, on_delete=models.SET_NULL, related_name="sweep_trial")
    params = models.JSONField(default=dict)
    system_attrs = models.JSONField(default=dict, blank=True)  # Optuna's (GridSampler's grid_id)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    value = models.FloatField(null=True, blank=True)
    # Why the trial ended early: "pruned" (the median pruner), "stopped" (the sweep), the run's
    # status, or "invalid config (…): …" when its combination of values could not be queued.
    reason = models.CharField(max_length=REASON_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["sweep", "number"], name="sweep_trial_number")]

    def __str__(self) -> str:
        return f"trial {self.number} of sweep #{self.sweep_id}"


def get_sweeps_for_user(user) -> models.QuerySet[Sweep]:
    """Sweeps of the user's teams (the same rule as runs)."""
    if not user.is_authenticated:
        return Sweep.objects.none()
    return Sweep.objects.filter(team_scope(user))


def get_sweep_for_user(user, sweep_id) -> Sweep:
    """The sweep or ``Sweep.DoesNotExist`` (answer 404: ids of others stay hidden)."""
    return get_sweeps_for_user(user).get(pk=sweep_id)
