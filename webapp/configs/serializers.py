from rest_framework import serializers

from webapp.teams.models import Team, get_teams_for_user

from .models import Config, get_configs_for_user


class ConfigSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    parent = serializers.PrimaryKeyRelatedField(queryset=Config.objects.none(), required=False, allow_null=True)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.none(), required=False, allow_null=True,
                                              help_text="One of your teams; default: your personal team.")
    team_name = serializers.CharField(source="team.name", read_only=True, default=None)

    class Meta:
        model = Config
        fields = ["id", "name", "body", "data", "parent", "owner", "team", "team_name", "created_at", "updated_at"]
        read_only_fields = ["data", "owner", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:  # a fork's parent and the team must be ones the user can see
            self.fields["parent"].queryset = get_configs_for_user(request.user)
            self.fields["team"].queryset = get_teams_for_user(request.user)


class ConfigValidateSerializer(serializers.Serializer):
    config_yaml = serializers.CharField(allow_blank=True, trim_whitespace=False)
    queue = serializers.RegexField(r"^(cpu|gpu)$", required=False,
                                   help_text="`cpu` or `gpu`: also estimate memory and FLOPs for that queue's device.")
    dataset = serializers.IntegerField(required=False, min_value=1,
                                       help_text="A dataset id: with `queue`, the estimate includes time per epoch.")


class ConfigValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
    estimate = serializers.DictField(required=False, allow_null=True,
                                     help_text="Pre-flight estimate (parameters, memory_bytes, flops_per_step, "
                                               "memory_budget_bytes, fits) when the teacher dimension is known.")
