from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from .actions import DatasetRejected, create_dataset
from .models import get_datasets_for_user
from .serializers import DatasetSerializer, DatasetUploadSerializer


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     viewsets.GenericViewSet):
    """Upload (multipart `name`, `kind`, `file`), list and read text datasets."""

    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return get_datasets_for_user(self.request.user).select_related("owner")

    @extend_schema(request=DatasetUploadSerializer, responses={201: DatasetSerializer})
    def create(self, request, *args, **kwargs):
        upload = DatasetUploadSerializer(data=request.data)
        if not upload.is_valid():
            errors = [{"line": None, "message": f"{field}: {' '.join(str(m) for m in messages)}"}
                      for field, messages in upload.errors.items()]
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        data = upload.validated_data
        try:
            dataset = create_dataset(request.user, data.get("name", ""), data.get("kind") or None, data["file"])
        except DatasetRejected as error:
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)
