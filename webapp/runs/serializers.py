from rest_framework import serializers

from .models import Checkpoint, LogEntry, Run


class RunSerializer(serializers.ModelSerializer):
    """A run as the API shows it (list and detail)."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True, default=None)
    tags = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    time_to_start_s = serializers.SerializerMethodField(help_text="Seconds from submission to the first start.")

    class Meta:
        model = Run
        fields = [
            "id", "name", "status", "queue", "priority", "queue_position", "time_to_start_s", "attempt", "dataset", "dataset_name", "config", "config_yaml",
            "source_config", "source_run", "team", "team_name", "is_baseline", "created_at", "started_at", "finished_at", "error", "end_reason", "summary", "last_step",
            "total_steps", "tags", "notes", "cancel_requested", "worker_host", "device", "owner",
            "seed", "dataset_sha256", "teachers", "package_versions", "code_version",
        ]
        read_only_fields = fields

    def get_tags(self, run: Run) -> list[str]:
        return run.tag_names

    def get_queue_position(self, run: Run) -> int | None:
        return run.queue_position()

    def get_time_to_start_s(self, run: Run) -> float | None:
        return run.time_to_start_s()


class RunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    dataset = serializers.IntegerField()
    config_yaml = serializers.CharField(required=False, trim_whitespace=False,
                                        help_text="The config as YAML text; or give `config`.")
    config = serializers.DictField(required=False, help_text="The config as an object; or give `config_yaml`.")
    queue = serializers.ChoiceField(choices=Run.Queue.choices, default=Run.Queue.CPU)
    priority = serializers.IntegerField(min_value=0, max_value=9, default=5,
                                        help_text="0–9; within the queue a higher priority starts first.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    source_config = serializers.IntegerField(required=False, allow_null=True)
    source_run = serializers.IntegerField(required=False, allow_null=True,
                                          help_text="The run this one is forked from (recorded, nothing copied).")
    team = serializers.IntegerField(required=False, allow_null=True,
                                    help_text="One of your teams; default: the dataset's team.")

    def validate(self, attrs):
        if ("config_yaml" in attrs) == ("config" in attrs):
            raise serializers.ValidationError({"config_yaml": "give exactly one of `config_yaml` or `config`"})
        return attrs


class RunUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                 help_text="Replaces all tags of the run.")
    notes = serializers.CharField(required=False, allow_blank=True)
    is_baseline = serializers.BooleanField(required=False,
                                           help_text="true makes this the team's baseline (replacing the previous one).")


class RunRerunSerializer(serializers.Serializer):
    queue = serializers.ChoiceField(choices=Run.Queue.choices, required=False,
                                    help_text="Default: the queue of the original run.")


class CheckpointSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Checkpoint
        fields = ["id", "step", "path", "size_bytes", "best", "created_at", "download_url"]

    def get_download_url(self, checkpoint: Checkpoint) -> str:
        from django.urls import reverse

        return reverse("api:run-checkpoint-download", args=[checkpoint.run_id, checkpoint.pk])


class LogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = LogEntry
        fields = ["id", "time", "level", "message"]
