from rest_framework import serializers

from .models import Config, get_configs_for_user


class ConfigSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    parent = serializers.PrimaryKeyRelatedField(queryset=Config.objects.none(), required=False, allow_null=True)

    class Meta:
        model = Config
        fields = ["id", "name", "body", "data", "parent", "owner", "created_at", "updated_at"]
        read_only_fields = ["data", "owner", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:  # a fork's parent must be one the user can see
            self.fields["parent"].queryset = get_configs_for_user(request.user)


class ConfigValidateSerializer(serializers.Serializer):
    config_yaml = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ConfigValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))
