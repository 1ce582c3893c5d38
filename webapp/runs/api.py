from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from webapp.configs.actions import ConfigRejected
from webapp.configs.models import Config, get_configs_for_user
from webapp.datasets.models import Dataset, get_dataset_for_user

from .actions import RunFinished, cancel_run, queue_run
from .models import MetricPoint, Run, get_runs_for_user
from .serializers import (CheckpointSerializer, LogEntrySerializer, RunCreateSerializer, RunSerializer,
                          RunUpdateSerializer)

LOG_PAGE = 500


def _errors(*errors: tuple[str, str], code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"errors": [{"path": path, "message": message} for path, message in errors]}, status=code)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training runs: queue, follow, cancel, download checkpoints.

    List filters: `?status=running`, `?dataset=<id>`, `?tag=<name>`, `?queue=gpu`.
    """

    serializer_class = RunSerializer

    def get_queryset(self):
        runs = get_runs_for_user(self.request.user).select_related("owner", "dataset").prefetch_related("tags")
        params = self.request.query_params
        if params.get("status"):
            runs = runs.filter(status__in=params["status"].split(","))
        if params.get("queue"):
            runs = runs.filter(queue=params["queue"])
        if params.get("dataset", "").isdigit():
            runs = runs.filter(dataset_id=int(params["dataset"]))
        if params.get("tag"):
            runs = runs.filter(tags__name=params["tag"])
        return runs

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def create(self, request):
        serializer = RunCreateSerializer(data=request.data)
        if not serializer.is_valid():
            return _errors(*[(field, " ".join(str(m) for m in messages))
                             for field, messages in serializer.errors.items()])
        data = serializer.validated_data
        try:
            dataset = get_dataset_for_user(request.user, data["dataset"])
        except Dataset.DoesNotExist:
            return _errors(("dataset", f"no dataset with id {data['dataset']}"))
        source = None
        if data.get("source_config"):
            try:
                source = get_configs_for_user(request.user).get(pk=data["source_config"])
            except Config.DoesNotExist:
                return _errors(("source_config", f"no config with id {data['source_config']}"))
        try:
            run = queue_run(
                request.user, data.get("name", ""), dataset, config_yaml=data.get("config_yaml"),
                config=data.get("config"), queue=data["queue"], tags=data.get("tags"), notes=data.get("notes", ""),
                source_config=source,
            )
        except ConfigRejected as error:
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RunUpdateSerializer, responses={200: RunSerializer})
    def partial_update(self, request, pk=None):
        run = self.get_object()
        serializer = RunUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        for field in ("name", "notes"):
            if field in data:
                setattr(run, field, data[field])
        run.save(update_fields=[field for field in ("name", "notes") if field in data] or None)
        if "tags" in data:
            run.set_tags(data["tags"])
        return Response(RunSerializer(run).data)

    @extend_schema(request=None, responses={200: RunSerializer, 409: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Ask the run to stop; 409 when it has already finished."""
        run = self.get_object()
        try:
            run = cancel_run(run)
        except RunFinished as error:
            return Response({"detail": str(error), "status": run.status}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(run).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("keys", str, description="Comma-separated metric keys (default: all)."),
            OpenApiParameter("since_step", int, description="Only points with step > since_step."),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        """`{key: [[step, value], ...]}`, ordered by step."""
        run = self.get_object()
        points = MetricPoint.objects.filter(run=run)
        keys = [key for key in request.query_params.get("keys", "").split(",") if key]
        if keys:
            points = points.filter(key__in=keys)
        since = request.query_params.get("since_step", "")
        if since:
            try:
                points = points.filter(step__gt=int(since))
            except ValueError:
                return _errors(("since_step", "must be an integer"))
        series: dict[str, list[list[float]]] = {key: [] for key in keys}
        for key, step, value in points.order_by("key", "step").values_list("key", "step", "value").iterator():
            series.setdefault(key, []).append([step, value])
        return Response(series)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only entries with id > after.")],
        responses={200: LogEntrySerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """The run's log, oldest first (the last 500 entries unless `after` is given)."""
        run = self.get_object()
        entries = run.log_entries.all()
        after = request.query_params.get("after", "")
        if after.isdigit():
            entries = entries.filter(pk__gt=int(after)).order_by("id")[:LOG_PAGE]
        else:
            entries = reversed(list(entries.order_by("-id")[:LOG_PAGE]))
        return Response(LogEntrySerializer(list(entries), many=True).data)

    @extend_schema(responses={200: CheckpointSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def checkpoints(self, request, pk=None):
        run = self.get_object()
        return Response(CheckpointSerializer(run.checkpoints.all(), many=True).data)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"checkpoints/(?P<checkpoint_id>\d+)/download",
            url_name="checkpoint-download")
    def download_checkpoint(self, request, pk=None, checkpoint_id=None):
        """The checkpoint file, streamed."""
        run = self.get_object()
        checkpoint = run.checkpoints.filter(pk=checkpoint_id).first()
        if checkpoint is None:
            raise Http404("no such checkpoint")
        root = Path(settings.CHECKPOINT_DIR).resolve()
        path = checkpoint.absolute_path.resolve()
        if not path.is_relative_to(root) or not path.exists():  # never serve outside the store
            raise Http404("checkpoint file is missing")
        name = f"run-{run.pk}-step-{checkpoint.step}"
        if path.is_dir():  # the trainer's checkpoints are folders (model, optimizer, state)
            return FileResponse(_zip_folder(path), as_attachment=True, filename=f"{name}.zip")
        return FileResponse(path.open("rb"), as_attachment=True, filename=f"{name}{path.suffix}")


def _zip_folder(folder: Path):
    """The folder as an uncompressed zip in a temporary file (safetensors barely compress)."""
    spool = tempfile.TemporaryFile()
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and not file.is_symlink():
                archive.write(file, file.relative_to(folder).as_posix())
    spool.seek(0)
    return spool
