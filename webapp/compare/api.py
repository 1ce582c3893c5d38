"""REST endpoints of the comparison (mounted under /api/v1/compare/).

    GET compare/?runs=1,2,3&keys=val/qa_cosine,train/loss&max_points=4000   api:compare
    GET compare/runs/?q=cube.steps >= 10&sort=-val/mrr&page=2                api:compare-runs
    GET compare/table.csv?runs=…                                              api:compare-table-csv
    GET compare/curves.csv?runs=…[&full=1]                                    api:compare-curves-csv
"""

from __future__ import annotations

import ujson
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from .export import curves_csv, raw_curves_csv, table_csv
from .query import QueryError
from .service import (DEFAULT_MAX_POINTS, MAX_KEY_LENGTH, MAX_KEYS, MAX_MAX_POINTS, CompareError, compare,
                      parse_request, visible_runs)
from .table import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, query_runs


class FastJSONRenderer(JSONRenderer):
    """ujson for the big payloads: ~4× faster than the standard library on 100k floats
    (the comparison builds plain lists and strings, nothing ujson cannot encode)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return ujson.dumps(data, ensure_ascii=False, escape_forward_slashes=False).encode("utf-8")


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return ujson.dumps(data).encode() if data is not None else b""  # only errors reach here


def _error(param: str, message: str, column: int | None = None, code=status.HTTP_400_BAD_REQUEST) -> Response:
    error = {"path": param, "message": message}
    if column is not None:
        error["column"] = column
    return Response({"errors": [error]}, status=code)


COMPARE_PARAMETERS = [
    OpenApiParameter("runs", str, required=True, description="Comma-separated run ids (at most 200). Ids "
                     "you cannot see are left out and listed under `missing`; none visible → 404."),
    OpenApiParameter("keys", str, description=f"Comma-separated metric keys (default: train/loss, "
                     f"val/qa_cosine, val/recall@1, val/mrr; at most {MAX_KEYS}, each at most {MAX_KEY_LENGTH} "
                     "characters)."),
    OpenApiParameter("max_points", int, description=f"Total point budget of the response, split evenly over "
                     f"the series (default {DEFAULT_MAX_POINTS}, at most {MAX_MAX_POINTS}). Each series keeps the "
                     "first, min, max and last point of equal-width buckets, and always its first and last point."),
    OpenApiParameter("x", str, enum=["step", "time"], description="x axis: step (default) or unix time."),
    OpenApiParameter("x_min", float, description="Zoom: only points with x ≥ x_min, at full resolution when the "
                     "budget allows."),
    OpenApiParameter("x_max", float, description="Zoom: only points with x ≤ x_max."),
    OpenApiParameter("group_by", str, description="`seed` or any config path: runs on the same dataset whose "
                     "configs differ only in it become one group with a mean ± std band per key."),
]

COMPARE_EXAMPLE = OpenApiExample(
    "Two runs, one key",
    value={
        "runs": [{"id": 1, "name": "lattice 4", "status": "succeeded", "dataset": "faq", "dataset_id": 1,
                  "owner": "alice", "created_at": "2026-11-25T10:00:00+00:00", "tags": ["best"],
                  "config": {"cube": {"steps": 4}}, "summary": {"val/qa_cosine": 0.81}, "is_baseline": False,
                  "last_step": 1000}],
        "missing": [],
        "keys": ["val/qa_cosine"], "x": "step", "x_min": None, "x_max": None, "max_points": 4000,
        "points_per_series": 2000, "points": 4,
        "series": {"1": {"val/qa_cosine": {"x": [100, 1000], "y": [0.52, 0.81], "n": 2, "downsampled": False}},
                   "2": {"val/qa_cosine": {"x": [100, 1000], "y": [0.50, 0.77], "n": 2, "downsampled": False}}},
        "config_diff": [{"key": "cube.steps", "values": {"1": 4, "2": 8}}],
        "summary": {"1": {"val/qa_cosine": {"last": 0.81, "min": 0.52, "max": 0.81, "best": 0.81}}},
        "baselines": {"1": {"val/qa_cosine": {"identity": 0.41, "linear": 0.63}}},
        "team_baselines": [{"id": 7, "name": "reference", "team_id": 1, "team": "alice",
                            "values": {"val/qa_cosine": 0.74}}],
        "group_by": None, "groups": [],
    },
    response_only=True,
)


@extend_schema(
    operation_id="compare_runs",
    summary="Compare runs: downsampled curves, config diff, summary table, groups, baselines",
    description="`baselines` are the trainer's identity/linear reference values of each run; "
                "`team_baselines` the team's baseline run (marked `is_baseline`) of each team the runs belong "
                "to, when it is not among them: its summary value per key (else its last point).",
    parameters=COMPARE_PARAMETERS,
    responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    examples=[COMPARE_EXAMPLE],
)
@api_view(["GET"])
@renderer_classes([FastJSONRenderer])
def compare_view(request):
    try:
        payload = _payload(request)
    except CompareError as error:
        return _error(error.param, error.message)
    if not payload["runs"]:
        return _error("runs", "no such runs", code=status.HTTP_404_NOT_FOUND)
    return Response(payload)


def _payload(request) -> dict:
    return compare(request.user, parse_request(request.query_params))


def _csv_response(request, lines, filename: str):
    try:
        payload = _payload(request)
    except CompareError as error:
        return _error(error.param, error.message)
    if not payload["runs"]:
        return _error("runs", "no such runs", code=status.HTTP_404_NOT_FOUND)
    return _streamed_csv(lines(payload), filename)


def _streamed_csv(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _full_resolution_csv(request):
    """curves.csv?full=1: the raw points, without building the (downsampled) comparison."""
    try:
        compare_request = parse_request(request.query_params)
    except CompareError as error:
        return _error(error.param, error.message)
    runs, _ = visible_runs(request.user, compare_request.run_ids)
    if not runs:
        return _error("runs", "no such runs", code=status.HTTP_404_NOT_FOUND)
    return _streamed_csv(raw_curves_csv(runs, compare_request), "comparison-curves-full.csv")


@extend_schema(
    operation_id="compare_table_csv",
    summary="The comparison's summary table as CSV",
    description="One row per run: id, name, status, dataset, owner, created_at, tags, each config key that "
                "differs among the runs, then `<key>:last`, `:min`, `:max`, `:best` per metric key. Cells that "
                "a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a leading `'`.",
    parameters=COMPARE_PARAMETERS,
    responses={(200, "text/csv"): OpenApiTypes.STR},
    examples=[OpenApiExample("Table", value="id,name,status,...,val/qa_cosine:last\r\n1,lattice 4,succeeded,...,0.81\r\n",
                             response_only=True, media_type="text/csv")],
)
@api_view(["GET"])
@renderer_classes([CSVRenderer, FastJSONRenderer])
def table_csv_view(request):
    return _csv_response(request, table_csv, "comparison-table.csv")


@extend_schema(
    operation_id="compare_curves_csv",
    summary="The comparison's curves as CSV (long format)",
    description="Columns run_id, run_name, key, step (or time with x=time), value; the same points the "
                "comparison returns, so `max_points`, `x_min` and `x_max` apply (raise max_points for more). "
                "With `full=1`: every stored point instead, streamed from the database, as columns run_id, "
                "run_name, key, step, time, value (`x_min`/`x_max` still apply, on the `x` axis; `max_points` "
                "and `group_by` do not).",
    parameters=COMPARE_PARAMETERS + [
        OpenApiParameter("full", bool, description="1: full resolution, every stored point (no downsampling)."),
    ],
    responses={(200, "text/csv"): OpenApiTypes.STR},
    examples=[OpenApiExample("Curves", value="run_id,run_name,key,step,value\r\n1,lattice 4,val/qa_cosine,100,0.52\r\n",
                             response_only=True, media_type="text/csv")],
)
@api_view(["GET"])
@renderer_classes([CSVRenderer, FastJSONRenderer])
def curves_csv_view(request):
    full = (request.query_params.get("full") or "0").lower()
    if full not in ("0", "1", "true", "false"):
        return _error("full", "must be 1 or 0")
    if full in ("1", "true"):
        return _full_resolution_csv(request)
    return _csv_response(request, curves_csv, "comparison-curves.csv")


@extend_schema(
    operation_id="compare_runs_table",
    summary="The runs table: query, sort, page",
    description="Query language: fields `status`, `dataset`, `tag`, `owner`, `name`, `id`, `queue`, `date`, "
                "`teacher`, any config path (`cube.steps`, `train.lr`, `config.<path>`) and any summary metric "
                "(`val/qa_cosine`, `summary.<key>`); operators = != < <= > >= ~ (contains), `in (…)`, "
                "`between … and …`; `and`, `or`, `not`, parentheses. A bad query answers 400 with the column "
                "of the problem.",
    parameters=[
        OpenApiParameter("q", str, description="The query, e.g. `cube.steps >= 10 and teacher in (minilm, tiny-bert)`."),
        OpenApiParameter("sort", str, description="A field, `-` first for descending (default `-date`); "
                         "e.g. `-val/mrr`, `cube.steps`; `tags` sorts by each run's alphabetically first tag, "
                         "untagged runs last."),
        OpenApiParameter("page", int, description="1-based page number."),
        OpenApiParameter("page_size", int, description=f"Rows per page (default {DEFAULT_PAGE_SIZE}, "
                         f"at most {MAX_PAGE_SIZE})."),
        OpenApiParameter("columns", str, description="Comma-separated config paths or metric keys to return "
                         "per row under `columns`."),
    ],
    responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
    examples=[
        OpenApiExample("A page", response_only=True, value={
            "count": 1, "page": 1, "page_size": 50, "pages": 1,
            "results": [{"id": 1, "name": "lattice 4", "status": "succeeded", "dataset": "faq", "owner": "alice",
                         "created_at": "2026-11-25T10:00:00+00:00", "queue": "cpu", "tags": ["best"],
                         "last_step": 1000, "is_baseline": False,
                         "columns": {"cube.steps": 4, "val/qa_cosine": 0.81}}]}),
        OpenApiExample("A bad query", response_only=True, status_codes=["400"], value={
            "errors": [{"path": "q", "message": "expected a value, found the end of the query", "column": 14}]}),
    ],
)
@api_view(["GET"])
@renderer_classes([FastJSONRenderer])
def runs_table_view(request):
    params = request.query_params
    try:
        page = int(params.get("page") or 1)
        page_size = int(params.get("page_size") or DEFAULT_PAGE_SIZE)
    except ValueError:
        return _error("page", "page and page_size must be whole numbers")
    columns = [column.strip() for column in params.get("columns", "").split(",") if column.strip()]
    try:
        return Response(query_runs(request.user, params.get("q", ""), params.get("sort", "-date"), page,
                                   page_size, columns))
    except QueryError as error:
        param = "sort" if params.get("sort") and error.message.startswith("cannot sort") else "q"
        return _error(param, error.message, error.column)
