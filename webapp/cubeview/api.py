"""REST endpoints of the cube view and the projector (mounted under /api/v1/cubeview/).

    GET cubeview/runs/<id>/cube/?example=0&channel=&max_cells=20000      api:cubeview-cube
    GET cubeview/runs/<id>/projector/?method=pca&components=3&max_points=10000   api:cubeview-projector

Both answer from the cache: 200 ``{"status": "ready", "result": …}``, or 202
``{"status": "pending"}`` after queueing the computation on a worker (poll again), or 200
``{"status": "failed", "error": …}`` (``&retry=1`` computes again). 404 for a run you
cannot see, 409 while the run has no checkpoint.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema

PENDING = OpenApiExample("computing", response_only=True, status_codes=["202"], value={
    "status": "pending", "kind": "cube", "params": {"example": 0, "channel": None, "max_cells": 20000},
    "checkpoint_step": 120})
CUBE_READY = OpenApiExample("ready", response_only=True, status_codes=["200"], value={
    "status": "ready", "kind": "cube", "params": {"example": 0, "channel": None, "max_cells": 20000},
    "checkpoint_step": 120, "result": {
        "checkpoint_step": 120, "lattice": [2, 2, 2], "strides": [1, 1, 1], "cells_shown": 8, "cells": 8,
        "coords": {"x": [0, 0, 0, 0, 1, 1, 1, 1], "y": [0, 0, 1, 1, 0, 0, 1, 1], "z": [0, 1, 0, 1, 0, 1, 0, 1]},
        "steps": 1, "steps_run": 1, "channel": None, "state_dim": 16, "validation_size": 23,
        "examples": [{"index": 0, "row": 17, "question": "How do I reset my password?",
                      "answer": "Use the link on the sign-in page.",
                      "values": [[1.0, 1.1, 0.9, 1.0, 1.2, 1.0, 0.8, 1.1], [1.3, 1.2, 1.0, 1.1, 1.4, 1.2, 0.9, 1.2]],
                      "cosine": [0.41, 0.57]}]}})
PROJECTOR_READY = OpenApiExample("ready", response_only=True, status_codes=["200"], value={
    "status": "ready", "kind": "projector", "params": {"method": "pca", "components": 2, "max_points": 9999},
    "checkpoint_step": 120, "result": {
        "checkpoint_step": 120, "method": "pca", "explained_variance": [0.31, 0.12], "components": 2,
        "rows": [3, 17], "validation_size": 23, "lines": [0, 1],
        "points": {kind: {"x": [0.12, -0.40], "y": [0.05, 0.22], "text": ["How do I reset my password?", "Where is my invoice?"]}
                   for kind in ("question", "answer", "output")}}})
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.runs.models import Run, get_run_for_user

from .actions import NoCheckpoint, request_inspection
from .models import Inspection

MAX_CELLS = 20_000
MAX_POINTS = 10_000


class BadParameter(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


def _int(request, name: str, default, low: int, high: int):
    raw = request.query_params.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"`{name}` must be an integer") from None
    if not low <= value <= high:
        raise BadParameter(name, f"`{name}` must be between {low} and {high}")
    return value


def _answer(request, run_id: int, kind: str, params_of) -> Response:
    try:
        run = get_run_for_user(request.user, run_id)
    except Run.DoesNotExist:
        return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    try:
        params = params_of(request, run)
    except BadParameter as error:
        return Response({"errors": [{"path": error.path, "message": str(error)}]}, status=status.HTTP_400_BAD_REQUEST)
    try:
        inspection = request_inspection(run, kind, params, retry=request.query_params.get("retry") == "1")
    except NoCheckpoint as error:
        return Response({"detail": str(error), "status": run.status}, status=status.HTTP_409_CONFLICT)
    code = status.HTTP_202_ACCEPTED if inspection.status == Inspection.Status.PENDING else status.HTTP_200_OK
    return Response(inspection.to_dict(), status=code)


def _cube_params(request, run) -> dict:
    state_dim = int((run.config.get("cube") or {}).get("state_dim", 64))
    return {
        "example": _int(request, "example", 0, 0, 10_000_000),
        "channel": _int(request, "channel", None, 0, state_dim - 1),
        "max_cells": _int(request, "max_cells", MAX_CELLS, 1, MAX_CELLS),
    }


def _projector_params(request, run) -> dict:
    method = request.query_params.get("method") or "pca"
    if method not in ("pca", "umap"):
        raise BadParameter("method", "`method` must be pca or umap")
    return {"method": method, "components": _int(request, "components", 3, 2, 3),
            "max_points": _int(request, "max_points", MAX_POINTS, 3, MAX_POINTS)}


@extend_schema(
    summary="Cube view of a run", responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
    description="Each cell's state norm (or `channel`) after every propagation step for validation example "
    "`example`, and the output's cosine to the target after each step, from the run's latest checkpoint. "
    "Lattices over `max_cells` cells are drawn on a regular sub-grid (every n-th cell per axis).",
    parameters=[OpenApiParameter("example", int), OpenApiParameter("channel", int),
                OpenApiParameter("max_cells", int), OpenApiParameter("retry", int)],
    examples=[CUBE_READY, PENDING],
)
@api_view(["GET"])
def cube_view(request, run_id: int):
    return _answer(request, run_id, Inspection.Kind.CUBE, _cube_params)


@extend_schema(
    summary="Embedding projector of a run", responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
    description="Teacher question, teacher answer and cube output embeddings (primary space) of the validation "
    "set projected together (PCA, or UMAP where installed), at most `max_points` points (a seeded sample).",
    parameters=[OpenApiParameter("method", str, enum=["pca", "umap"]), OpenApiParameter("components", int),
                OpenApiParameter("max_points", int), OpenApiParameter("retry", int)],
    examples=[PROJECTOR_READY, PENDING],
)
@api_view(["GET"])
def projector_view(request, run_id: int):
    return _answer(request, run_id, Inspection.Kind.PROJECTOR, _projector_params)
