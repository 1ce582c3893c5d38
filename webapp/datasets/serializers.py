from rest_framework import serializers

from .models import Dataset


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True, default=None)

    class Meta:
        model = Dataset
        fields = ["id", "name", "kind", "rows", "sha256", "size_bytes", "original_name", "preview", "warnings",
                  "owner", "team", "team_name", "created_at"]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Dataset.Kind.choices, required=False, allow_blank=True,
                                   help_text="Inferred from the file when absent.")
    file = serializers.FileField()
    team = serializers.IntegerField(required=False, allow_null=True,
                                    help_text="One of your teams; default: your personal team.")
