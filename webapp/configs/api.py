from drf_spectacular.utils import OpenApiExample, OpenApiTypes, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from trainer.config import config_json_schema

from .actions import ConfigRejected, create_config, update_config, validate_config_text
from .models import get_configs_for_user
from .serializers import ConfigSerializer, ConfigValidateSerializer, ConfigValidationResultSerializer


BODY = "task: dialogue\nseed: 0\ncube: {lattice: [8, 8, 6], steps: 4}\nteachers: [{name: minilm}]\n"
CONFIG_EXAMPLE = OpenApiExample("config", response_only=True, value={
    "id": 4, "name": "small cube", "body": BODY, "data": {"task": "dialogue", "seed": 0}, "parent": None,
    "owner": "alice", "team": 1, "team_name": "alice", "created_at": "2026-11-26T05:00:00Z",
    "updated_at": "2026-11-26T05:00:00Z",
})
INVALID = OpenApiExample("invalid", response_only=True, status_codes=["400"],
                         value={"errors": [{"path": "cube.lattice", "message": "needs three sizes"}]})


@extend_schema_view(
    list=extend_schema(summary="List configs", description="Saved configs of your teams, last edited first.",
                       examples=[CONFIG_EXAMPLE]),
    retrieve=extend_schema(summary="Show a config", examples=[CONFIG_EXAMPLE]),
    create=extend_schema(
        summary="Save a config", description="Validated against the trainer's schema; 400 lists every problem. "
        "`parent` records a fork; `team` defaults to your personal team.",
        responses={201: ConfigSerializer, 400: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("save", request_only=True, value={"name": "small cube", "body": BODY}),
                  CONFIG_EXAMPLE, INVALID]),
    update=extend_schema(summary="Replace a config", responses={200: ConfigSerializer, 400: OpenApiTypes.OBJECT},
                         examples=[OpenApiExample("replace", request_only=True, value={"name": "small cube",
                                                                                        "body": BODY}),
                                   CONFIG_EXAMPLE, INVALID]),
    partial_update=extend_schema(summary="Rename or edit a config",
                                 responses={200: ConfigSerializer, 400: OpenApiTypes.OBJECT},
                                 examples=[OpenApiExample("rename", request_only=True, value={"name": "v2"}),
                                           CONFIG_EXAMPLE, INVALID]),
    destroy=extend_schema(summary="Delete a config", description="Runs started from it keep their own copy."),
)
class ConfigViewSet(viewsets.ModelViewSet):
    """Saved training configs (YAML `body`, validated against the trainer's schema)."""

    serializer_class = ConfigSerializer

    def get_queryset(self):
        return get_configs_for_user(self.request.user).select_related("owner", "team")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            config = create_config(request.user, data["name"], data["body"], data.get("parent"), team=data.get("team"))
        except ConfigRejected as error:
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(config).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        config = self.get_object()
        serializer = self.get_serializer(config, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            update_config(config, name=data.get("name"), body=data.get("body"))
        except ConfigRejected as error:
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(config).data)

    @extend_schema(summary="Validate a config", request=ConfigValidateSerializer,
                   responses={200: ConfigValidationResultSerializer},
                   examples=[OpenApiExample("check", request_only=True, value={"config_yaml": BODY}),
                             OpenApiExample("result", response_only=True, value={
                                 "valid": False, "errors": [{"path": "cube.stpes", "message": "unknown key"}]})])
    @action(detail=False, methods=["post"])
    def validate(self, request):
        """Validate YAML without saving: `{valid, errors: [{path, message}]}` (always 200); with `queue`, also `estimate`."""
        serializer = ConfigValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        errors = validate_config_text(serializer.validated_data["config_yaml"])
        body = {"valid": not errors, "errors": errors}
        queue = serializer.validated_data.get("queue")
        if queue and not errors:  # issue 6: the pre-flight estimate for that queue's device
            from webapp.runs.preflight import config_estimate

            body["estimate"] = config_estimate(serializer.validated_data["config_yaml"], queue,
                                               rows=self._dataset_rows(request, serializer.validated_data.get("dataset")))
        return Response(body)

    @staticmethod
    def _dataset_rows(request, dataset_id):
        """Rows of one of the user's datasets (None when absent or not theirs: the estimate is a hint)."""
        if not dataset_id:
            return None
        from webapp.datasets.models import Dataset, get_dataset_for_user

        try:
            return get_dataset_for_user(request.user, dataset_id).rows
        except Dataset.DoesNotExist:
            return None


@extend_schema(summary="Config JSON Schema", description="The trainer's config schema, for editors.",
               responses={200: OpenApiTypes.OBJECT},
               examples=[OpenApiExample("schema (abridged)", response_only=True, value={
                   "title": "Config", "type": "object", "additionalProperties": False,
                   "required": ["task", "seed", "cube", "train", "data"],
                   "properties": {"task": {"enum": ["autoencoder", "dialogue"], "type": "string"},
                                  "seed": {"type": "integer"}, "cube": {"$ref": "#/$defs/CubeConfig"}}})])
@api_view(["GET"])
def config_schema(request):
    """The trainer's config JSON Schema (for editors and the new-run form)."""
    return Response(config_json_schema())
