"""The comparison of chosen runs: series, config diff, summary table, groups and baselines.

``compare(user, run_ids, keys, ...)`` is the one entry point the API, the CSV exports and the
page share. Runs are read through ``get_runs_for_user``: an id the user may not see is simply
not there (listed under ``missing``, exactly like an id that does not exist).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from webapp.runs.models import MetricPoint, Run, get_runs_for_user

from .series import Series, load_series

DEFAULT_KEYS = ["train/loss", "val/qa_cosine", "val/recall@1", "val/mrr"]
DEFAULT_MAX_POINTS = 4000
MAX_MAX_POINTS = 200_000  # ~4 MB of JSON at most
MAX_RUNS = 200
MAX_KEYS = 50
MAX_KEY_LENGTH = 100  # the length of MetricPoint.key and SeriesCache.key
AGGREGATES = ("last", "min", "max", "best")
BASELINES = ("identity", "linear")
# Config paths that never make two runs "different" for grouping: labels and the data file path
# (the file path is where the worker put it; the run's dataset, which group_runs compares, is what
# tells two data sets apart).
GROUP_IGNORED = {"name", "data.path"}


class CompareError(ValueError):
    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass
class CompareRequest:
    run_ids: list[int]
    keys: list[str]
    max_points: int = DEFAULT_MAX_POINTS
    axis: str = "step"  # step | time
    x_min: Optional[float] = None
    x_max: Optional[float] = None
    group_by: Optional[str] = None  # "seed" or any config path


def parse_request(params) -> CompareRequest:
    """A CompareRequest from query parameters; CompareError names the bad one."""
    run_ids = _int_list(params.get("runs", ""), "runs")
    if not run_ids:
        raise CompareError("runs", "give at least one run id, e.g. runs=1,2,3")
    if len(run_ids) > MAX_RUNS:
        raise CompareError("runs", f"at most {MAX_RUNS} runs per comparison")
    keys = [key.strip() for key in params.get("keys", "").split(",") if key.strip()] or list(DEFAULT_KEYS)
    keys = list(dict.fromkeys(keys))
    if len(keys) > MAX_KEYS:
        raise CompareError("keys", f"at most {MAX_KEYS} metric keys per comparison")
    too_long = next((key for key in keys if len(key) > MAX_KEY_LENGTH), None)
    if too_long is not None:
        raise CompareError("keys", f"a metric key has at most {MAX_KEY_LENGTH} characters: {too_long[:40]!r}…")
    max_points = _number(params.get("max_points"), "max_points", int)
    max_points = DEFAULT_MAX_POINTS if max_points is None else max_points
    if not 1 <= max_points <= MAX_MAX_POINTS:
        raise CompareError("max_points", f"must be between 1 and {MAX_MAX_POINTS}")
    axis = params.get("x") or "step"
    if axis not in ("step", "time"):
        raise CompareError("x", "must be `step` or `time`")
    x_min, x_max = _number(params.get("x_min"), "x_min", float), _number(params.get("x_max"), "x_max", float)
    if x_min is not None and x_max is not None and x_max < x_min:
        raise CompareError("x_max", "must not be below x_min")
    group_by = (params.get("group_by") or "").strip() or None
    return CompareRequest(list(dict.fromkeys(run_ids)), keys, max_points, axis, x_min, x_max,
                          group_by)


def _int_list(text: str, param: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CompareError(param, "must be comma-separated whole numbers") from None


def _number(text, param: str, kind):
    if text in (None, ""):
        return None
    try:
        value = kind(text)
    except ValueError:
        raise CompareError(param, "must be a number") from None
    if isinstance(value, float) and not np.isfinite(value):
        raise CompareError(param, "must be finite")
    return value


# --- the comparison -----------------------------------------------------------------------

def visible_runs(user, run_ids: list[int]) -> tuple[list[Run], list[int]]:
    """The user's runs among ``run_ids`` (in the order asked) and the ids not found."""
    found = {run.pk: run for run in
             get_runs_for_user(user).filter(pk__in=run_ids).select_related("owner", "dataset").prefetch_related("tags")}
    return [found[pk] for pk in run_ids if pk in found], [pk for pk in run_ids if pk not in found]


def compare(user, request: CompareRequest) -> dict[str, Any]:
    runs, missing = visible_runs(user, request.run_ids)
    groups = group_runs(runs, request.group_by) if request.group_by else []
    banded = [group for group in groups if len(group["runs"]) > 1]
    n_series = len(runs) * len(request.keys) + len(banded) * len(request.keys)
    budget = max(request.max_points // max(n_series, 1), 1)
    series = load_series(runs, request.keys, budget, request.axis, request.x_min, request.x_max)
    by_run: dict[int, dict[str, Series]] = defaultdict(dict)
    for item in series:
        by_run[item.run_id][item.key] = item
    payload = {
        "runs": [run_row(run) for run in runs],
        "missing": missing,
        "keys": request.keys,
        "x": request.axis,
        "x_min": request.x_min,
        "x_max": request.x_max,
        "max_points": request.max_points,
        "points_per_series": budget,
        "series": {str(run.pk): {key: series_json(by_run[run.pk][key], request.axis) for key in request.keys}
                   for run in runs},
        "config_diff": config_diff(runs),
        "summary": summary_table(runs, request.keys, by_run),
        "baselines": baselines(runs, request.keys),
        "team_baselines": team_baselines(user, runs, request.keys),
        "group_by": request.group_by,
        "groups": [group | {"series": group_series(group["runs"], request.keys, by_run, request.axis, budget)}
                   if len(group["runs"]) > 1 else group | {"series": {}} for group in groups],
    }
    payload["points"] = sum(len(s["x"]) for per_run in payload["series"].values() for s in per_run.values()) + sum(
        len(s["x"]) for group in payload["groups"] for s in group["series"].values())
    return payload


def run_row(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk, "name": run.name, "status": run.status, "dataset": run.dataset.name,
        "dataset_id": run.dataset_id, "owner": run.owner.username, "created_at": run.created_at.isoformat(),
        "tags": [tag.name for tag in run.tags.all()], "config": run.config, "summary": run.summary,
        "is_baseline": bool(getattr(run, "is_baseline", False)), "last_step": run.last_step,
    }


def series_json(series: Series, axis: str) -> dict[str, Any]:
    x = series.x(axis)
    return {
        "x": x.astype(np.int64).tolist() if axis == "step" else x.tolist(),
        "y": series.values.tolist(),
        "n": series.n_points,
        "downsampled": series.downsampled,
    }


# --- config diff --------------------------------------------------------------------------

def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"cube": {"steps": 4}, "teachers": [{"name": "m"}]} -> {"cube.steps": 4, "teachers.0.name": "m"}.

    Lists of scalars (``cube.lattice``) stay one value; lists of objects are indexed."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, child in value.items():
            flat.update(flatten(child, f"{prefix}.{key}" if prefix else str(key)))
        return flat if flat or not prefix else {prefix: {}}
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        flat = {}
        for index, child in enumerate(value):
            flat.update(flatten(child, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix: value}


def config_diff(runs: list[Run]) -> list[dict[str, Any]]:
    """Only the keys whose values differ among ``runs`` (a key some runs lack differs)."""
    flats = [flatten(run.config or {}) for run in runs]
    keys = sorted(set().union(*flats)) if flats else []
    rows = []
    for key in keys:
        values = [flat.get(key) for flat in flats]
        encoded = {json.dumps(value, sort_keys=True) for value in values}
        if len(encoded) > 1 or any(key not in flat for flat in flats):
            rows.append({"key": key, "values": {str(run.pk): value for run, value in zip(runs, values)}})
    return rows


# --- summary table and baselines ----------------------------------------------------------

def higher_is_better(key: str) -> bool:
    """Losses, errors and times go down; similarities, recalls and MRR go up."""
    lowered = key.lower()
    return not any(word in lowered for word in ("loss", "error", "mse", "time", "perplexity"))


def summary_table(runs: list[Run], keys: list[str], by_run) -> dict[str, dict[str, dict]]:
    """{run_id: {key: {last, min, max, best}}} over each full series (the run's summary value
    when the run has no points for the key)."""
    table: dict[str, dict[str, dict]] = {}
    for run in runs:
        row = {}
        for key in keys:
            stats = by_run[run.pk][key].stats if key in by_run[run.pk] else {}
            last, low, high = stats.get("last"), stats.get("min"), stats.get("max")
            if last is None and isinstance(run.summary.get(key), (int, float)):
                last = low = high = float(run.summary[key])
            best = (high if higher_is_better(key) else low) if last is not None else None
            row[key] = {"last": last, "min": low, "max": high, "best": best}
        table[str(run.pk)] = row
    return table


def baselines(runs: list[Run], keys: list[str]) -> dict[str, dict[str, dict]]:
    """{run_id: {key: {identity, linear}}} from each run's summary (`baseline/<kind>/<key>`)."""
    result: dict[str, dict[str, dict]] = {}
    for run in runs:
        per_key = {}
        for key in keys:
            values = {kind: run.summary.get(f"baseline/{kind}/{key}") for kind in BASELINES}
            if any(isinstance(value, (int, float)) for value in values.values()):
                per_key[key] = values
        if per_key:
            result[str(run.pk)] = per_key
    return result


def team_baselines(user, runs: list[Run], keys: list[str]) -> list[dict[str, Any]]:
    """The baseline run (``Run.is_baseline``) of each team the compared runs belong to, unless it
    is one of them: [{id, name, team_id, team, values: {key: value}}]. A value is the run's
    summary value, else the last point of its series; keys with neither are left out."""
    selected = {run.pk for run in runs}
    teams = {run.team_id for run in runs if run.team_id is not None}
    found = (get_runs_for_user(user).filter(team_id__in=teams, is_baseline=True).exclude(pk__in=selected)
             .select_related("team").order_by("team_id"))
    result = []
    for baseline in found:
        values = {key: value for key in keys if (value := _reference_value(baseline, key)) is not None}
        result.append({"id": baseline.pk, "name": baseline.name, "team_id": baseline.team_id,
                       "team": baseline.team.name, "values": values})
    return result


def _reference_value(run: Run, key: str) -> Optional[float]:
    value = (run.summary or {}).get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    last = (MetricPoint.objects.filter(run=run, key=key).order_by("-step").values_list("value", flat=True)
            .first())
    return float(last) if last is not None and np.isfinite(last) else None


# --- groups -------------------------------------------------------------------------------

def group_runs(runs: list[Run], group_by: str) -> list[dict[str, Any]]:
    """Runs on the same dataset whose configs are equal except for ``group_by`` (and labels)
    form one group."""
    varying = group_by[len("config."):] if group_by.startswith("config.") else group_by
    groups: dict[str, list[Run]] = {}
    for run in runs:
        flat = flatten(run.config or {})
        rest = {key: value for key, value in flat.items()
                if key != varying and not key.startswith(varying + ".") and key not in GROUP_IGNORED}
        signature = json.dumps({"dataset": run.dataset_id, "config": rest}, sort_keys=True, default=str)
        groups.setdefault(signature, []).append(run)
    result = []
    for members in groups.values():
        values = [flatten(run.config or {}).get(varying) for run in members]
        label = f"{members[0].name} ×{len(members)} ({varying} " + ", ".join(json.dumps(v) for v in values) + ")"
        result.append({"label": label, "runs": [run.pk for run in members], "values": values})
    return result


def group_series(run_ids: list[int], keys: list[str], by_run, axis: str, budget: int) -> dict[str, dict]:
    """Per key, the members' mean and (population) standard deviation at each x.

    When every member has the same x values (the usual case: same steps, not downsampled)
    those are used as they are; otherwise the members are interpolated onto a common grid
    over the x range they all cover."""
    out = {}
    for key in keys:
        members = [by_run[run_id][key] for run_id in run_ids if len(by_run[run_id][key].values)]
        if len(members) < 2:
            continue
        xs = [member.x(axis) for member in members]
        if all(len(x) == len(xs[0]) and np.array_equal(x, xs[0]) for x in xs):
            grid = xs[0]
            stack = np.vstack([member.values for member in members])  # (members, points)
        else:
            low, high = max(x[0] for x in xs), min(x[-1] for x in xs)
            if high < low:
                continue
            grid = np.linspace(low, high, max(min(budget, max(len(x) for x in xs)), 2))
            if axis == "step":
                grid = np.unique(np.round(grid))
            stack = np.vstack([np.interp(grid, x, member.values) for x, member in zip(xs, members)])
        out[key] = {
            "x": grid.astype(np.int64).tolist() if axis == "step" else grid.tolist(),
            "mean": stack.mean(axis=0).tolist(),
            "std": stack.std(axis=0).tolist(),
            "n": len(members),
        }
    return out
