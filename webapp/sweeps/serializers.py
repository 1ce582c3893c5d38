from rest_framework import serializers

from webapp.runs.models import Run

from .models import Sweep, Trial

MAX_ID = 2**62  # ids beyond SQLite's integers are refused, not a 500


class TrialSerializer(serializers.ModelSerializer):
    run_name = serializers.CharField(source="run.name", read_only=True, default=None)
    run_status = serializers.CharField(source="run.status", read_only=True, default=None)
    last_step = serializers.IntegerField(source="run.last_step", read_only=True, default=None)
    total_steps = serializers.IntegerField(source="run.total_steps", read_only=True, default=None)
    latest = serializers.SerializerMethodField(help_text="The metric's latest value (while running too).")
    rank = serializers.SerializerMethodField(help_text="1 for the best completed trial; null until complete.")
    reason = serializers.CharField(read_only=True, help_text="Why it ended early: `pruned`, `stopped`, the run's "
                                   "status, or `invalid config (…): …` when it could not be queued (no run).")

    class Meta:
        model = Trial
        fields = ["number", "run", "run_name", "run_status", "params", "state", "value", "latest", "reason", "rank",
                  "last_step", "total_steps", "created_at"]
        read_only_fields = fields

    def get_latest(self, trial: Trial) -> float | None:
        if trial.value is not None:
            return trial.value
        value = (trial.run.summary or {}).get(trial.sweep.metric) if trial.run else None
        return value if isinstance(value, (int, float)) else None

    def get_rank(self, trial: Trial) -> int | None:
        return self.context.get("ranks", {}).get(trial.number)


class SweepSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True, default=None)
    # A plain string in the schema: a second `status` enum would collide with the run's.
    status = serializers.CharField(read_only=True, help_text="running | stopping | finished | stopped")
    counts = serializers.SerializerMethodField(help_text="Trials by state: running, complete, pruned, fail.")
    best = serializers.SerializerMethodField(help_text="The best completed trial: {number, run, value, params}.")

    class Meta:
        model = Sweep
        fields = ["id", "name", "status", "method", "metric", "direction", "budget", "parallelism", "queue", "pruning",
                  "pruner_startup_trials", "pruner_warmup_steps", "seed", "dataset", "dataset_name", "team",
                  "team_name", "owner", "base_config_yaml", "search_space_yaml", "search_space", "error",
                  "created_at", "finished_at", "counts", "best"]
        read_only_fields = fields

    def get_counts(self, sweep: Sweep) -> dict[str, int]:
        counts = dict.fromkeys(Trial.State.values, 0)
        for state in sweep.trials.values_list("state", flat=True):
            counts[state] += 1
        return counts

    def get_best(self, sweep: Sweep) -> dict | None:
        trials = sweep.trials.filter(state=Trial.State.COMPLETE, value__isnull=False)
        trial = trials.order_by("-value" if sweep.direction == "maximize" else "value", "number").first()
        if trial is None:
            return None
        return {"number": trial.number, "run": trial.run_id, "value": trial.value, "params": trial.params}


class HistoryPointSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    value = serializers.FloatField()
    best = serializers.FloatField(help_text="Best value up to this trial.")


class SweepDetailSerializer(SweepSerializer):
    trials = serializers.SerializerMethodField(help_text="Every trial, ranked: completed best first, then running, "
                                               "pruned and failed, each by number.")
    history = serializers.SerializerMethodField(help_text="Completed trials in order with the best so far.")
    importances = serializers.SerializerMethodField(help_text="optuna.importance.get_param_importances (fANOVA) "
                                                    "over the completed trials; {} under two.")

    class Meta(SweepSerializer.Meta):
        fields = SweepSerializer.Meta.fields + ["trials", "history", "importances"]
        read_only_fields = fields

    def _trials(self, sweep: Sweep) -> list[Trial]:
        if not hasattr(self, "_cached"):
            self._cached = list(sweep.trials.select_related("run", "sweep"))
        return self._cached

    def get_trials(self, sweep: Sweep) -> list[dict]:
        trials = self._trials(sweep)
        sign = -1 if sweep.direction == "maximize" else 1
        order = {"complete": 0, "running": 1, "pruned": 2, "fail": 3}
        trials = sorted(trials, key=lambda t: (order[t.state], sign * t.value if t.value is not None else 0, t.number))
        ranks = {t.number: i + 1 for i, t in enumerate(t for t in trials if t.state == "complete")}
        return TrialSerializer(trials, many=True, context={"ranks": ranks}).data

    def get_history(self, sweep: Sweep) -> list[dict]:
        points, best = [], None
        for trial in sorted(self._trials(sweep), key=lambda t: t.number):
            if trial.state != "complete" or trial.value is None:
                continue
            better = best is None or (trial.value > best if sweep.direction == "maximize" else trial.value < best)
            best = trial.value if better else best
            points.append({"number": trial.number, "value": trial.value, "best": best})
        return HistoryPointSerializer(points, many=True).data

    def get_importances(self, sweep: Sweep) -> dict[str, float]:
        from . import optimiser
        from .actions import past_trials

        return optimiser.importances(sweep.search_space, sweep.direction, past_trials(sweep, with_intermediate=False))


class SweepCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    dataset = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    team = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)
    base_config_yaml = serializers.CharField(trim_whitespace=False, help_text="The base config (YAML).")
    search_space_yaml = serializers.CharField(
        trim_whitespace=False, required=False,
        help_text="`{config.key: {type: float|int|categorical, low, high, log, step, choices, values}}` as YAML; "
                  "or give `search_space` as an object. A choice may be a list, e.g. a lattice `[8, 8, 6]`.")
    search_space = serializers.DictField(required=False)
    method = serializers.ChoiceField(choices=Sweep.Method.choices, default=Sweep.Method.TPE)
    metric = serializers.CharField(max_length=100, default="val/qa_cosine")
    direction = serializers.ChoiceField(choices=Sweep.Direction.choices, default=Sweep.Direction.MAXIMIZE)
    budget = serializers.IntegerField(min_value=1, max_value=10_000, default=10)
    parallelism = serializers.IntegerField(min_value=1, max_value=64, default=1)
    queue = serializers.ChoiceField(choices=Run.Queue.choices, default=Run.Queue.CPU)
    pruning = serializers.BooleanField(default=True)
    pruner_startup_trials = serializers.IntegerField(min_value=0, max_value=10_000, default=5)
    pruner_warmup_steps = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)

    def validate(self, attrs):
        if not attrs.get("search_space_yaml") and not attrs.get("search_space"):
            raise serializers.ValidationError({"search_space_yaml": "give the search space as YAML or an object"})
        return attrs


class SweepValidateSerializer(serializers.Serializer):
    base_config_yaml = serializers.CharField(trim_whitespace=False)
    search_space_yaml = serializers.CharField(trim_whitespace=False)
    method = serializers.ChoiceField(choices=Sweep.Method.choices, default=Sweep.Method.TPE)
    dataset = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID,
                                       help_text="Validate against this dataset (its kind) when given.")
    queue = serializers.ChoiceField(choices=Run.Queue.choices, required=False,
                                    help_text="Also return the base config's pre-flight estimate on this queue.")


class SweepValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    grid_size = serializers.IntegerField(allow_null=True, required=False)
    estimate = serializers.DictField(required=False)


class SweepStopSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=[("finish", "finish"), ("cancel", "cancel")], default="finish",
                                   help_text="`finish`: running trials finish; `cancel`: they stop now.")
