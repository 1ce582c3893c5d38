from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from webapp.configs.actions import ConfigRejected
from webapp.configs.models import Config, get_configs_for_user
from webapp.datasets.models import Dataset, get_dataset_for_user

from webapp.teams.models import Team, get_team_for_user

from .actions import (RunFinished, RunNotFinished, WrongTeam, cancel_run, delete_run, queue_run, rerun_run,
                      set_baseline)
from .models import MetricPoint, Run, get_run_for_user, get_runs_for_user
from .serializers import (CheckpointSerializer, LogEntrySerializer, RunCreateSerializer, RunRerunSerializer,
                          RunSerializer, RunUpdateSerializer)

LOG_PAGE = 500


def _errors(*errors: tuple[str, str], code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"errors": [{"path": path, "message": message} for path, message in errors]}, status=code)


ERRORS = OpenApiTypes.OBJECT  # {"errors": [{path, message}]}
CONFLICT = OpenApiResponse(OpenApiTypes.OBJECT, description="`{detail, status}`: not possible in the run's state.",
                           examples=[OpenApiExample("conflict", value={"detail": "run #7 is running; cancel it "
                                                                                  "before deleting it",
                                                                        "status": "running"})])
RUN_EXAMPLE = OpenApiExample("run", response_only=True, value={
    "id": 7, "name": "lattice 8x8x6", "status": "succeeded", "queue": "cpu", "queue_position": None, "dataset": 2,
    "dataset_name": "support chats", "team": 1, "team_name": "alice", "is_baseline": False, "source_run": None,
    "tags": ["sweep-3"], "notes": "", "summary": {"val/mrr": 0.41}, "last_step": 120, "total_steps": 120,
    "end_reason": "completed",
})


@extend_schema_view(
    list=extend_schema(
        summary="List runs", description="Runs of your teams, newest first. Filters: `?status=running,queued`, "
        "`?dataset=<id>`, `?tag=<name>`, `?queue=gpu`, `?team=<id>`, `?baseline=true`.",
        parameters=[OpenApiParameter("status", str), OpenApiParameter("dataset", int), OpenApiParameter("tag", str),
                    OpenApiParameter("queue", str), OpenApiParameter("team", int),
                    OpenApiParameter("baseline", bool)],
        examples=[RUN_EXAMPLE],
    ),
    retrieve=extend_schema(summary="Show a run", description="One run of your teams (404 for any other).",
                           examples=[RUN_EXAMPLE]),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training runs: queue, follow, tag, annotate, re-run, cancel, delete, download checkpoints."""

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
        if params.get("team", "").isdigit():
            runs = runs.filter(team_id=int(params["team"]))
        if params.get("baseline", "").lower() in ("1", "true"):
            runs = runs.filter(is_baseline=True)
        return runs

    @extend_schema(
        summary="Queue a run",
        description="Validates the config (YAML text or an object) against the dataset and queues the run. "
        "`team` defaults to the dataset's team; `source_run` records a fork. 400 lists every problem "
        "as `{errors: [{path, message}]}` and queues nothing.",
        request=RunCreateSerializer, responses={201: RunSerializer, 400: ERRORS},
        examples=[
            OpenApiExample("queue a run", request_only=True, value={
                "name": "first", "dataset": 2, "queue": "cpu", "tags": ["demo"],
                "config_yaml": "task: dialogue\nseed: 0\ncube: {lattice: [8, 8, 6], steps: 4}\n"
                               "teachers: [{name: minilm}]\n"}),
            OpenApiExample("invalid config", response_only=True, status_codes=["400"], value={
                "errors": [{"path": "cube.stpes", "message": "unknown key; did you mean `steps`?"}]}),
            RUN_EXAMPLE,
        ],
    )
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
        source, source_run, team = None, None, None
        if data.get("source_config"):
            try:
                source = get_configs_for_user(request.user).get(pk=data["source_config"])
            except Config.DoesNotExist:
                return _errors(("source_config", f"no config with id {data['source_config']}"))
        if data.get("source_run"):
            try:
                source_run = get_run_for_user(request.user, data["source_run"])
            except Run.DoesNotExist:
                return _errors(("source_run", f"no run with id {data['source_run']}"))
        if data.get("team"):
            try:
                team = get_team_for_user(request.user, data["team"])
            except Team.DoesNotExist:
                return _errors(("team", f"you are not in a team with id {data['team']}"))
        try:
            run = queue_run(
                request.user, data.get("name", ""), dataset, config_yaml=data.get("config_yaml"),
                config=data.get("config"), queue=data["queue"], priority=data["priority"], tags=data.get("tags"), notes=data.get("notes", ""),
                source_config=source, team=team, source_run=source_run,
            )
        except ConfigRejected as error:
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        except WrongTeam as error:
            return _errors(("team", str(error)))
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename, tag, annotate or mark as baseline",
        description="Only the fields given change. `tags` replaces the run's tags; `is_baseline: true` makes the "
        "run its team's one baseline (the previous baseline is unmarked).",
        request=RunUpdateSerializer, responses={200: RunSerializer},
        examples=[OpenApiExample("tag and annotate", request_only=True,
                                 value={"tags": ["sweep-3", "good"], "notes": "lr 3e-4 was best"}),
                  OpenApiExample("mark as baseline", request_only=True, value={"is_baseline": True}),
                  RUN_EXAMPLE],
    )
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
        if "is_baseline" in data:
            set_baseline(run, data["is_baseline"])
        return Response(RunSerializer(run).data)

    @extend_schema(
        summary="Delete a finished run",
        description="Deletes the run with its metrics, log, checkpoints and their files in storage. A queued or "
        "running run must be cancelled first: 409.",
        responses={204: None, 409: CONFLICT},
    )
    def destroy(self, request, pk=None):
        run = self.get_object()
        try:
            delete_run(run)
        except RunNotFinished as error:
            return Response({"detail": str(error), "status": run.status}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Re-run on a queue",
        description="Queues a new run with the same config and dataset (and tags) on `queue` (default: the same "
        "queue). The new run's `source_run` is this run.",
        request=RunRerunSerializer, responses={201: RunSerializer, 400: ERRORS},
        examples=[OpenApiExample("on the GPU queue", request_only=True, value={"queue": "gpu"}), RUN_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        run = self.get_object()
        serializer = RunRerunSerializer(data=request.data)
        if not serializer.is_valid():
            return _errors(*[(field, " ".join(str(m) for m in messages))
                             for field, messages in serializer.errors.items()])
        try:
            new = rerun_run(request.user, run, serializer.validated_data.get("queue"))
        except ConfigRejected as error:  # the trainer's schema changed since the run
            return Response({"errors": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(RunSerializer(new).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Cancel a run", description="Asks the run to stop: a queued run is cancelled at "
                   "once, a running one saves a checkpoint and ends `cancelled`. 409 when it has already finished.",
                   request=None, responses={200: RunSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Ask the run to stop; 409 when it has already finished."""
        run = self.get_object()
        try:
            run = cancel_run(run, reason=f"cancelled by {request.user.get_username()}")
        except RunFinished as error:
            return Response({"detail": str(error), "status": run.status}, status=status.HTTP_409_CONFLICT)
        return Response(RunSerializer(run).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("keys", str, description="Comma-separated metric keys (default: all)."),
            OpenApiParameter("since_step", int, description="Only points with step > since_step."),
        ],
        summary="Metric series of a run", description="`{key: [[step, value], ...]}`, ordered by step.",
        responses={200: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("two keys", response_only=True,
                                 value={"loss": [[1, 0.92], [2, 0.71]], "val/mrr": [[2, 0.33]]})],
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
        summary="Log of a run", description="Oldest first: the last 500 entries, or 500 after `after`.",
        responses={200: LogEntrySerializer(many=True)},
        examples=[OpenApiExample("entries", response_only=True,
                                 value=[{"id": 1, "time": 1764130000.5, "level": "INFO", "message": "epoch 1"}])],
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

    @extend_schema(summary="Checkpoints of a run", description="Each with its download URL.",
                   responses={200: CheckpointSerializer(many=True)},
                   examples=[OpenApiExample("one", response_only=True, value=[{
                       "id": 3, "step": 120, "path": "run-7/step-120", "size_bytes": 52_000, "best": True,
                       "created_at": "2026-11-26T05:00:00Z",
                       "download_url": "/api/v1/runs/7/checkpoints/3/download/"}])])
    @action(detail=True, methods=["get"])
    def checkpoints(self, request, pk=None):
        run = self.get_object()
        return Response(CheckpointSerializer(run.checkpoints.all(), many=True).data)

    @extend_schema(summary="Download a checkpoint", description="The file, or a folder checkpoint as a zip.",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
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
