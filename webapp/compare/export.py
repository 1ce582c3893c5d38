"""CSV exports of a comparison: the summary table, the curves as shown (downsampled) and the
curves at full resolution (every stored point, streamed from the database).

Every cell goes through ``csv_cell``: a spreadsheet would run a cell that starts with
= + - @ (or a tab or carriage return) as a formula, and run names and config values are user
text (OWASP "CSV Injection"). Such cells get a leading single quote; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Iterator

from webapp.runs.models import MetricPoint, Run

from .service import AGGREGATES, CompareRequest

RAW_CHUNK = 5000  # rows the database cursor hands over at a time

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value  # a negative number is data, not a formula
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _lines(rows: Iterable[list]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def table_rows(payload: dict) -> Iterator[list]:
    """One row per run: identity, each differing config key, then key:last/min/max/best."""
    diff_keys = [row["key"] for row in payload["config_diff"]]
    diff = {row["key"]: row["values"] for row in payload["config_diff"]}
    keys = payload["keys"]
    yield (["id", "name", "status", "dataset", "owner", "created_at", "tags"] + diff_keys
           + [f"{key}:{aggregate}" for key in keys for aggregate in AGGREGATES])
    for run in payload["runs"]:
        run_id = str(run["id"])
        stats = payload["summary"][run_id]
        yield ([run["id"], run["name"], run["status"], run["dataset"], run["owner"], run["created_at"],
                " ".join(run["tags"])]
               + [diff[key].get(run_id) for key in diff_keys]
               + [stats[key][aggregate] for key in keys for aggregate in AGGREGATES])


def curve_rows(payload: dict) -> Iterator[list]:
    """Long format: one row per point of each returned series."""
    names = {str(run["id"]): run["name"] for run in payload["runs"]}
    yield ["run_id", "run_name", "key", payload["x"], "value"]
    for run_id, per_key in payload["series"].items():
        for key, series in per_key.items():
            for x, y in zip(series["x"], series["y"]):
                yield [int(run_id), names[run_id], key, x, y]


def raw_curve_rows(runs: list[Run], request: CompareRequest) -> Iterator[list]:
    """Every stored point of the runs' keys (no downsampling), read in chunks so that the
    memory stays flat however long the runs are. ``x_min``/``x_max`` still cut the range."""
    names = {run.pk: run.name for run in runs}
    yield ["run_id", "run_name", "key", "step", "time", "value"]
    points = MetricPoint.objects.filter(run_id__in=list(names), key__in=request.keys)
    axis = "time" if request.axis == "time" else "step"
    if request.x_min is not None:
        points = points.filter(**{f"{axis}__gte": request.x_min})
    if request.x_max is not None:
        points = points.filter(**{f"{axis}__lte": request.x_max})
    rows = points.order_by("run_id", "key", "step").values_list("run_id", "key", "step", "time", "value")
    for run_id, key, step, time, value in rows.iterator(chunk_size=RAW_CHUNK):
        yield [run_id, names[run_id], key, step, time, value]


def table_csv(payload: dict) -> Iterator[str]:
    return _lines(table_rows(payload))


def curves_csv(payload: dict) -> Iterator[str]:
    return _lines(curve_rows(payload))


def raw_curves_csv(runs: list[Run], request: CompareRequest) -> Iterator[str]:
    return _lines(raw_curve_rows(runs, request))
