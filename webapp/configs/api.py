from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from trainer.config import config_json_schema

from .actions import ConfigRejected, create_config, update_config, validate_config_text
from .models import get_configs_for_user
from .serializers import ConfigSerializer, ConfigValidateSerializer, ConfigValidationResultSerializer


class ConfigViewSet(viewsets.ModelViewSet):
    """Saved training configs (YAML `body`, validated against the trainer's schema)."""

    serializer_class = ConfigSerializer

    def get_queryset(self):
        return get_configs_for_user(self.request.user).select_related("owner")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            config = create_config(request.user, data["name"], data["body"], data.get("parent"))
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

    @extend_schema(request=ConfigValidateSerializer, responses={200: ConfigValidationResultSerializer})
    @action(detail=False, methods=["post"])
    def validate(self, request):
        """Validate YAML without saving: `{valid, errors: [{path, message}]}` (always 200)."""
        serializer = ConfigValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        errors = validate_config_text(serializer.validated_data["config_yaml"])
        return Response({"valid": not errors, "errors": errors})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def config_schema(request):
    """The trainer's config JSON Schema (for editors and the new-run form)."""
    return Response(config_json_schema())
