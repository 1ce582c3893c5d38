"""CSV exports of a comparison: the summary table and the curves.

Every cell goes through ``csv_cell``: a spreadsheet would run a cell that starts with
= + - @ (or a tab or carriage return) as a formula, and run names and config values are user
text (OWASP "CSV Injection"). Such cells get a leading single quote; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Iterator

from .service import AGGREGATES

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


def table_csv(payload: dict) -> Iterator[str]:
    return _lines(table_rows(payload))


def curves_csv(payload: dict) -> Iterator[str]:
    return _lines(curve_rows(payload))
