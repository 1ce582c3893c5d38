from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from webapp.teams.models import Team, get_team_for_user

from .actions import DatasetInUse, DatasetRejected, create_dataset, delete_dataset
from .models import get_datasets_for_user
from .serializers import DatasetSerializer, DatasetUploadSerializer

DATASET_EXAMPLE = OpenApiExample("dataset", response_only=True, value={
    "id": 2, "name": "support chats", "kind": "dialogue", "rows": 1200, "sha256": "9f86d08…", "size_bytes": 180_331,
    "original_name": "chats.jsonl", "preview": [{"question": "Where is my order?", "answer": "It ships today."}],
    "warnings": [{"line": 17, "message": "empty answer; row skipped"}], "owner": "alice", "team": 1,
    "team_name": "alice", "created_at": "2026-11-26T05:00:00Z",
})


@extend_schema_view(
    list=extend_schema(summary="List datasets", description="Datasets of your teams, newest first.",
                       examples=[DATASET_EXAMPLE]),
    retrieve=extend_schema(summary="Show a dataset", description="Rows, checksum, preview and warnings.",
                           examples=[DATASET_EXAMPLE]),
)
class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     viewsets.GenericViewSet):
    """Upload (multipart `name`, `kind`, `file`, optional `team`), list, read and delete text datasets."""

    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return get_datasets_for_user(self.request.user).select_related("owner", "team")

    @extend_schema(
        summary="Upload a dataset",
        description="multipart/form-data with `file` (JSONL, CSV or text, UTF-8), `name`, `kind` (`dialogue` or "
        "`corpus`, inferred when absent) and `team` (one of yours; default: your personal team). The file is "
        "read in full first: on any problem nothing is stored and 400 lists each issue with its line.",
        request=DatasetUploadSerializer, responses={201: DatasetSerializer, 400: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("bad line", response_only=True, status_codes=["400"], value={
            "errors": [{"line": 3, "message": "not valid UTF-8"}]}), DATASET_EXAMPLE],
    )
    def create(self, request, *args, **kwargs):
        upload = DatasetUploadSerializer(data=request.data)
        if not upload.is_valid():
            errors = [{"line": None, "message": f"{field}: {' '.join(str(m) for m in messages)}"}
                      for field, messages in upload.errors.items()]
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        data = upload.validated_data
        team = None
        if data.get("team"):
            try:
                team = get_team_for_user(request.user, data["team"])
            except Team.DoesNotExist:
                return Response({"errors": [{"line": None, "message": f"team: you are not in a team with id "
                                                                      f"{data['team']}"}]}, status=400)
        try:
            dataset = create_dataset(request.user, data.get("name", ""), data.get("kind") or None, data["file"],
                                     team=team)
        except DatasetRejected as error:
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Delete a dataset",
        description="Deletes the dataset and its stored file. While any run uses it: 409 with a message.",
        responses={204: None, 409: OpenApiResponse(OpenApiTypes.OBJECT, examples=[OpenApiExample(
            "in use", value={"detail": "2 runs use dataset #2; delete them first"})])},
    )
    def destroy(self, request, *args, **kwargs):
        dataset = self.get_object()
        try:
            delete_dataset(dataset)
        except DatasetInUse as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)
