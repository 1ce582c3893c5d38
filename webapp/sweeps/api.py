"""REST API for sweeps: create, list, show (trials ranked, history, importances), stop, validate."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from webapp.datasets.models import Dataset, get_dataset_for_user
from webapp.teams.models import Team, get_team_for_user

from . import optimiser
from .actions import advance_sweep, create_sweep, stop_sweep
from .models import Sweep, get_sweeps_for_user
from .optimiser import SpaceError
from .serializers import (SweepCreateSerializer, SweepDetailSerializer, SweepSerializer, SweepStopSerializer,
                          SweepValidateSerializer, SweepValidationResultSerializer)

BASE = ("task: dialogue\nseed: 0\ncube: {lattice: [8, 8, 6], steps: 4}\ntrain: {epochs: 2, batch_size: 16, "
        "eval_every: 20}\nteachers: [{name: minilm}]\n")
SPACE = ("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\ncube.steps: {type: int, low: 2, high: 8}\n"
         "cube.lattice: {type: categorical, choices: [[8, 8, 6], [8, 8, 3], [4, 4, 24]]}\n")
INVALID = OpenApiExample("invalid", response_only=True, status_codes=["400"], value={
    "errors": [{"path": "cube.stpes", "message": "unknown key `cube.stpes`; did you mean `steps`?"},
               {"path": "cube.neighbourhood", "message": "7 is not valid: Input should be 6 or 26 (nor are 18 more of "
                                                         "the 21 values checked: 8, 9, 10, 11, 12, …)"}]})


SWEEP = {
    "id": 4, "name": "lattice and lr", "status": "running", "method": "tpe", "metric": "val/qa_cosine",
    "direction": "maximize", "budget": 20, "parallelism": 2, "queue": "gpu", "pruning": True,
    "pruner_startup_trials": 5, "pruner_warmup_steps": 0, "seed": 0, "dataset": 2, "dataset_name": "support chats",
    "team": 1, "team_name": "alice", "owner": "alice", "base_config_yaml": BASE, "search_space_yaml": SPACE,
    "search_space": {"train.lr": {"type": "float", "low": 0.0001, "high": 0.01, "log": True}},
    "error": "", "created_at": "2026-11-26T08:00:00Z", "finished_at": None,
    "counts": {"running": 2, "complete": 5, "pruned": 3, "fail": 0}, "best": {"number": 3, "run": 41, "value": 0.62},
}
SWEEP_EXAMPLE = OpenApiExample("sweep", response_only=True, value=SWEEP)
SWEEP_DETAIL_EXAMPLE = OpenApiExample("sweep with trials", response_only=True, value={
    **SWEEP,
    "trials": [{"number": 3, "run": 41, "run_name": "lattice and lr #3", "run_status": "succeeded",
                "params": {"train.lr": 0.0021, "cube.lattice": [8, 8, 6]}, "state": "complete", "value": 0.62,
                "latest": 0.62, "reason": "", "rank": 1, "last_step": 120, "total_steps": 120,
                "created_at": "2026-11-26T08:01:00Z"},
               {"number": 6, "run": 44, "run_name": "lattice and lr #6", "run_status": "cancelled",
                "params": {"train.lr": 0.0098, "cube.lattice": [4, 4, 24]}, "state": "pruned", "value": None,
                "latest": 0.31, "reason": "pruned", "rank": None, "last_step": 40, "total_steps": 120,
                "created_at": "2026-11-26T08:04:00Z"}],
    "history": [{"number": 3, "value": 0.62, "best": 0.62}],
    "importances": {"train.lr": 0.71, "cube.lattice": 0.29},
})


def _errors(errors: list[dict], code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"errors": errors}, status=code)


def _serializer_errors(serializer) -> Response:
    return _errors([{"path": field, "message": " ".join(str(m) for m in messages)}
                    for field, messages in serializer.errors.items()])


@extend_schema_view(
    list=extend_schema(summary="List sweeps", description="Sweeps of your teams, newest first.",
                       examples=[SWEEP_EXAMPLE]),
    retrieve=extend_schema(
        summary="Show a sweep",
        description="The sweep with its trials ranked (completed best first), the optimisation history and the "
        "parameter importances. Also brings the sweep up to date (queues trials a missed event left waiting).",
        responses={200: SweepDetailSerializer}, examples=[SWEEP_DETAIL_EXAMPLE]),
)
class SweepViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Hyperparameter sweeps: each trial is an ordinary run tagged `sweep:<id>`."""

    serializer_class = SweepSerializer

    def get_queryset(self):
        return get_sweeps_for_user(self.request.user).select_related("owner", "dataset", "team")

    def retrieve(self, request, pk=None):
        sweep = self.get_object()
        if sweep.status in Sweep.ACTIVE:
            advance_sweep(sweep.pk)
            sweep.refresh_from_db()
        return Response(SweepDetailSerializer(sweep).data)

    @extend_schema(
        summary="Start a sweep",
        description="Validates the base config and the search space against the trainer's schema (each key set to "
        "each of its choices, or each value of an int range up to 1,000 values, must give a valid config, the "
        "lattice holding the teacher's dimension), saves the sweep and queues its first trials. 400 lists every "
        "problem as `{errors: [{path, message}]}` (path = the config key) and queues nothing. A choice may be a "
        "list (`cube.lattice: {type: categorical, choices: [[8, 8, 6], [4, 4, 24]]}`); `cube.lattice.2` sweeps one "
        "side. A trial whose combination of values is still refused when it is queued fails alone, with the "
        "reason in its `reason`, and the sweep goes on.",
        request=SweepCreateSerializer, responses={201: SweepSerializer, 400: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("start", request_only=True, value={
            "name": "lr and steps", "dataset": 2, "base_config_yaml": BASE, "search_space_yaml": SPACE,
            "method": "tpe", "metric": "val/qa_cosine", "direction": "maximize", "budget": 20, "parallelism": 2,
            "queue": "gpu"}), INVALID],
    )
    def create(self, request):
        serializer = SweepCreateSerializer(data=request.data)
        if not serializer.is_valid():
            return _serializer_errors(serializer)
        data = serializer.validated_data
        try:
            dataset = get_dataset_for_user(request.user, data["dataset"])
        except Dataset.DoesNotExist:
            return _errors([{"path": "dataset", "message": f"no dataset with id {data['dataset']}"}])
        team = None
        if data.get("team"):
            try:
                team = get_team_for_user(request.user, data["team"])
            except Team.DoesNotExist:
                return _errors([{"path": "team", "message": f"you are not in a team with id {data['team']}"}])
        try:
            sweep = create_sweep(
                request.user, name=data.get("name", ""), dataset=dataset, base_config_yaml=data["base_config_yaml"],
                search_space=data.get("search_space_yaml") or data["search_space"], method=data["method"],
                metric=data["metric"], direction=data["direction"], budget=data["budget"],
                parallelism=data["parallelism"], queue=data["queue"], team=team, pruning=data["pruning"],
                pruner_startup_trials=data["pruner_startup_trials"], pruner_warmup_steps=data["pruner_warmup_steps"],
                seed=data["seed"],
            )
        except SpaceError as error:
            return _errors(error.errors)
        return Response(SweepSerializer(sweep).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Stop a sweep",
        description="Queues no more trials and cancels its queued ones. `mode: finish` lets running trials finish; "
        "`mode: cancel` asks them to stop (they end `cancelled`). The sweep ends `stopped` once none is left.",
        request=SweepStopSerializer, responses={200: SweepSerializer, 409: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("stop now", request_only=True, value={"mode": "cancel"}),
                  OpenApiExample("stopping", response_only=True, value={**SWEEP, "status": "stopping"}),
                  OpenApiExample("already over", response_only=True, status_codes=["409"],
                                 value={"detail": "sweep #4 has already finished", "status": "finished"})],
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        sweep = self.get_object()
        serializer = SweepStopSerializer(data=request.data)
        if not serializer.is_valid():
            return _serializer_errors(serializer)
        if sweep.status not in Sweep.ACTIVE:
            return Response({"detail": f"sweep #{sweep.pk} has already {sweep.status}", "status": sweep.status},
                            status=status.HTTP_409_CONFLICT)
        sweep = stop_sweep(sweep, serializer.validated_data["mode"])
        return Response(SweepSerializer(sweep).data)

    @extend_schema(
        summary="Validate a sweep's config and search space",
        description="Nothing is saved: `{valid, errors: [{path, message}], grid_size}` (always 200); with `queue`, "
        "also the base config's pre-flight `estimate` on that queue's device.",
        request=SweepValidateSerializer, responses={200: SweepValidationResultSerializer},
        examples=[OpenApiExample("check", request_only=True, value={"base_config_yaml": BASE,
                                                                    "search_space_yaml": SPACE, "method": "tpe"}),
                  OpenApiExample("result", response_only=True, value={
                      "valid": False, "grid_size": None,
                      "errors": [{"path": "cube.lattice", "message": "[8, 8, 12] is not valid: lattice 8×8×12 = "
                                  "768 cells cannot hold 384-D vectors exactly: use 8×8×6 or 8×4×12, or set "
                                  "`cube.projection: learned`"}]})],
    )
    @action(detail=False, methods=["post"])
    def validate(self, request):
        serializer = SweepValidateSerializer(data=request.data)
        if not serializer.is_valid():
            return _serializer_errors(serializer)
        data = serializer.validated_data
        dataset = None
        if data.get("dataset"):
            try:
                dataset = get_dataset_for_user(request.user, data["dataset"])
            except Dataset.DoesNotExist:
                return Response({"valid": False, "errors": [{"path": "dataset", "message": "no such dataset"}]})
        size = None
        try:
            space = optimiser.parse_space(data["search_space_yaml"])
            optimiser.validate_space(data["base_config_yaml"], space, data_path=dataset.file.name if dataset else None,
                                     data_kind=dataset.kind if dataset else None)
            optimiser.check_method(data["method"], space)
            size = optimiser.grid_size(space)
        except SpaceError as error:
            return Response({"valid": False, "errors": error.errors, "grid_size": size})
        body = {"valid": True, "errors": [], "grid_size": size}
        if data.get("queue"):
            estimate = _estimate(data["base_config_yaml"], data["queue"], dataset)
            if estimate is not None:
                body["estimate"] = estimate
        return Response(body)


def _estimate(base_config_yaml: str, queue: str, dataset) -> dict | None:
    """The base config's pre-flight estimate (issue 6) on ``queue``, per epoch of ``dataset``."""
    from webapp.configs.actions import resolve_config
    from webapp.runs.preflight import check_teachers, input_dimension, preflight

    try:
        config = resolve_config(base_config_yaml, data_path=dataset.file.name if dataset else None,
                                data_kind=dataset.kind if dataset else None)
        return preflight(config, queue, input_dimension(config, check_teachers(config)),
                         rows=dataset.rows if dataset else None)
    except Exception:  # a hint only: the submit check says what is wrong
        return None
