"""Metric series for display: from the per-run cache when it can, from raw points when it must.

A finished run's series are read from ``SeriesCache`` (built once, see models.py). A run still
going changes every second: its cache row holds every point up to some step, whole (a live
row), and only the points after it are read raw; once that raw tail is long enough, the row
is rewritten to include it. The answer is the same as reading every point raw. A zoomed range
(``x_min``/``x_max``) is read raw — full resolution — unless the raw points in the range
would be too many to read within the response time, then from the finest cached level.
Whatever the source, each series is finally reduced with M4 to its share of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np
from django.db import IntegrityError, connection, transaction

from webapp.runs.models import MetricPoint, Run

from .downsample import downsample, finite
from .models import SeriesCache, decode_levels, encode_levels

LEVEL_BASE = 512  # points of the coarsest cached level
LEVEL_FACTOR = 8  # each finer level has 8× the points …
LEVEL_MAX_SHARE = 4  # … while it stays under a quarter of the raw points
RAW_ZOOM_CAP = 200_000  # raw points a zoomed request may read in total
LIVE_TAIL_MIN = 1000  # a running run's raw tail is folded into its live row once it has this many
LIVE_TAIL_SHARE = 8  # … and an eighth of the row's points: rewrites total a few times the points


@dataclass
class Series:
    run_id: int
    key: str
    steps: np.ndarray
    times: np.ndarray
    values: np.ndarray
    n_points: int  # points in the full series
    stats: dict = field(default_factory=dict)
    source: str = "raw"  # raw | cache (the whole series) | level-<points> (a reduced level) | live
    downsampled: bool = False

    def x(self, axis: str) -> np.ndarray:
        return self.times if axis == "time" else self.steps


# --- the cache ----------------------------------------------------------------------------

def series_stats(steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> dict:
    """first/last/min/max over the finite values, and the x extent (steps and times)."""
    if len(steps) == 0:
        return {}
    ok = np.isfinite(values)
    finite_values = values[ok]
    stats = {"first_step": float(steps[0]), "last_step": float(steps[-1]), "first_time": float(times[0]),
             "last_time": float(times[-1]), "first": None, "last": None, "min": None, "max": None}
    if len(finite_values):
        stats.update(first=float(finite_values[0]), last=float(finite_values[-1]),
                     min=float(finite_values.min()), max=float(finite_values.max()))
    return stats


def build_levels(steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> list:
    steps, values, times = finite(steps, values, times)
    if len(steps) <= LEVEL_BASE:  # short series are cached whole
        return [(steps, times, values)]
    levels, size = [], LEVEL_BASE
    while size * LEVEL_MAX_SHARE <= len(steps) or not levels:
        levels.append(downsample(steps, values, size, times))
        size *= LEVEL_FACTOR
    return [(level_steps, level_times, level_values) for level_steps, level_values, level_times in levels]


def read_points(run_id: int, key: str, step_min: Optional[float] = None, step_max: Optional[float] = None):
    """(steps, times, values) of one series in step order, as float64 arrays."""
    points = MetricPoint.objects.filter(run_id=run_id, key=key)
    if step_min is not None:
        points = points.filter(step__gte=int(np.floor(step_min)))
    if step_max is not None:
        points = points.filter(step__lte=int(np.ceil(step_max)))
    # The compiled SQL straight through the cursor: fetchall into numpy is ~3× faster than
    # iterating a values_list queryset (no per-row converters, no 100-row chunks).
    sql, params = points.order_by("step").values_list("step", "time", "value").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = np.array(cursor.fetchall(), dtype=np.float64)
    if rows.size == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    return rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy()


def build_cache(run: Run, keys: Iterable[str]) -> dict[str, SeriesCache]:
    """(Re)build the run's cache rows for ``keys``. A key without points gets an empty row that
    is not saved: keys come from the request, and storing every unknown one a client asks
    for would let any GET grow the table."""
    built = {}
    for key in keys:
        steps, times, values = read_points(run.pk, key)
        if not len(steps):
            built[key] = SeriesCache(run_id=run.pk, key=key, run_last_step=run.last_step, n_points=0,
                                     stats={"level_sizes": []}, coarse=b"", levels=b"")
            continue
        levels = build_levels(steps, times, values)
        stats = series_stats(steps, times, values) | {"level_sizes": [len(level[0]) for level in levels]}
        defaults = {"run_last_step": run.last_step, "n_points": len(steps), "stats": stats,
                    "coarse": encode_levels(levels[:1]), "levels": encode_levels(levels[1:])}
        try:
            with transaction.atomic():
                cache, _ = SeriesCache.objects.update_or_create(run_id=run.pk, key=key, defaults=defaults)
        except IntegrityError:  # another request built it at the same moment: same data
            cache = SeriesCache.objects.get(run_id=run.pk, key=key)
        built[key] = cache
    return built


def build_run_caches(run: Run) -> int:
    """Every key of a finished run (called when it finishes); returns how many were built."""
    keys = list(MetricPoint.objects.filter(run=run).values_list("key", flat=True).distinct())
    return len(build_cache(run, keys))


# --- choosing and reducing ----------------------------------------------------------------

def load_series(runs: list[Run], keys: list[str], budget: int, axis: str = "step",
                x_min: Optional[float] = None, x_max: Optional[float] = None) -> list[Series]:
    """One Series per run and key (empty arrays where a run lacks the key), each reduced to at
    most ``budget`` points; ordered as ``runs`` × ``keys``."""
    caches = _fresh_caches(runs, keys)
    live_rows = _live_rows(runs, keys)
    zoomed = x_min is not None or x_max is not None
    plans = []  # (run, key, cache or None, level or None)
    raw_estimate = 0
    for run in runs:
        for key in keys:
            cache = caches.get((run.pk, key))
            if cache is None:
                plans.append((run, key, None, None))
                continue
            levels = decode_levels(bytes(cache.coarse))
            share = _share_in_range(cache.stats, axis, x_min, x_max) if zoomed else 1.0
            raw_in_range = cache.n_points * share
            raw_estimate += raw_in_range if zoomed else 0
            plans.append((run, key, cache, (levels, share, raw_in_range)))
    use_raw_for_zoom = zoomed and raw_estimate <= RAW_ZOOM_CAP
    _load_finer_levels(plans, budget, zoomed, use_raw_for_zoom)
    prefetched = {}  # (run_id, key) -> (steps, times, values)
    if use_raw_for_zoom and axis == "step":
        prefetched = _prefetch_step_range([run for run, _, cache, _ in plans if cache is not None], keys,
                                          x_min, x_max)

    result = []
    for run, key, cache, plan in plans:
        if cache is None:  # a run still going: its live row and the raw points after it
            steps, times, values, source = read_live(run, key, live_rows.get((run.pk, key)))
            series = Series(run.pk, key, steps, times, values, len(steps), series_stats(steps, times, values),
                            source)
        else:
            series = _from_cache(run.pk, key, cache, plan, budget, axis, zoomed, use_raw_for_zoom, x_min, x_max,
                                 prefetched)
        result.append(_finish(series, budget, axis, x_min, x_max))
    return result


def read_many(run_ids: list[int], key: str, step_min: Optional[float], step_max: Optional[float]) -> dict:
    """One key's points of many runs in one indexed query: {run_id: (steps, times, values)}."""
    points = MetricPoint.objects.filter(run_id__in=run_ids, key=key)
    if step_min is not None:
        points = points.filter(step__gte=int(np.ceil(step_min)))
    if step_max is not None:
        points = points.filter(step__lte=int(np.floor(step_max)))
    sql, params = points.order_by("run_id", "step").values_list("run_id", "step", "time", "value").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = np.array(cursor.fetchall(), dtype=np.float64).reshape(-1, 4)  # (points, 4)
    found = {}
    bounds = np.flatnonzero(np.diff(rows[:, 0])) + 1 if len(rows) else np.array([], dtype=np.int64)
    for chunk in np.split(rows, bounds) if len(rows) else []:
        found[int(chunk[0, 0])] = (chunk[:, 1].copy(), chunk[:, 2].copy(), chunk[:, 3].copy())
    return found


def _prefetch_step_range(runs: list[Run], keys: list[str], x_min, x_max) -> dict:
    """A zoom by step reads each key of all runs at once (100 queries → 1)."""
    prefetched = {}
    if not runs:  # every run is still going (read on its own): `run_id IN ()` cannot be compiled
        return prefetched
    empty = (np.empty(0), np.empty(0), np.empty(0))
    for key in keys:
        found = read_many([run.pk for run in runs], key, x_min, x_max)
        for run in runs:
            prefetched[(run.pk, key)] = found.get(run.pk, empty)
    return prefetched


def _load_finer_levels(plans, budget: int, zoomed: bool, use_raw_for_zoom: bool) -> None:
    """Read the finer levels (in one query) only for the series the coarse level cannot serve:
    a comparison of many runs never reads them, which keeps the read ~10× smaller."""
    want = 2 * budget
    need = {}
    for _, _, cache, plan in plans:
        if cache is None or len(cache.stats.get("level_sizes", [])) < 2:
            continue
        levels, share, _ = plan
        coarse = len(levels[0][0]) if levels else 0
        if (zoomed and use_raw_for_zoom) or coarse >= cache.n_points or coarse * share >= want:
            continue
        need[cache.pk] = levels
    if need:
        for pk, blob in SeriesCache.objects.filter(pk__in=list(need)).values_list("pk", "levels"):
            need[pk].extend(decode_levels(bytes(blob)))


def _fresh_caches(runs: list[Run], keys: list[str]) -> dict[tuple[int, str], SeriesCache]:
    finished = [run for run in runs if run.is_finished]
    caches = {(cache.run_id, cache.key): cache
              for cache in SeriesCache.objects.filter(run__in=finished, key__in=keys).defer("levels")}
    for run in finished:
        stale = [key for key in keys if not is_current(caches.get((run.pk, key)), run)]
        if stale:
            for key, cache in build_cache(run, stale).items():
                caches[(run.pk, key)] = cache
    return caches


def is_current(cache: Optional[SeriesCache], run: Run) -> bool:
    """Built from every point the run has, with this code's level layout."""
    if cache is None or cache.run_last_step != run.last_step or cache.stats.get("live"):
        return False
    sizes = cache.stats.get("level_sizes")
    return sizes is not None and (not sizes or sizes[0] <= LEVEL_BASE)


# --- a running run ------------------------------------------------------------------------

def _live_rows(runs: list[Run], keys: list[str]) -> dict[tuple[int, str], SeriesCache]:
    going = [run for run in runs if not run.is_finished]
    if not going:
        return {}
    return {(row.run_id, row.key): row
            for row in SeriesCache.objects.filter(run__in=going, key__in=keys).defer("levels")}


def read_live(run: Run, key: str, row: Optional[SeriesCache]):
    """(steps, times, values, source) of a running run's series: the live row's points and
    the raw points after its last step, exactly what ``read_points`` would return."""
    cached = _live_points(row, run)
    after = cached[0][-1] if len(cached[0]) else None
    tail = read_points(run.pk, key, None if after is None else after + 1)
    if not len(cached[0]):
        steps, times, values = tail
    else:
        steps, times, values = (np.concatenate(pair) for pair in zip(cached, tail))
    if len(tail[0]) >= max(LIVE_TAIL_MIN, len(cached[0]) // LIVE_TAIL_SHARE):
        _store_live(run, key, steps, times, values)
    return steps, times, values, "live" if len(cached[0]) else "raw"


def _live_points(row: Optional[SeriesCache], run: Run):
    """The row's points while they are still the run's: the same attempt (a resumed attempt
    drops the points past its checkpoint and writes them again), and the run has not gone
    back to before the row was built."""
    empty = (np.empty(0), np.empty(0), np.empty(0))
    if row is None or not row.stats.get("live") or row.stats.get("attempt") != run.attempt:
        return empty
    if row.run_last_step > run.last_step:
        return empty
    levels = decode_levels(bytes(row.coarse))
    return levels[0] if levels else empty


def _store_live(run: Run, key: str, steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> None:
    """Every point, whole (non-finite values included), so the answer stays the raw one."""
    defaults = {"run_last_step": run.last_step, "n_points": len(steps),
                "stats": {"live": True, "attempt": run.attempt, "level_sizes": [len(steps)]},
                "coarse": encode_levels([(steps, times, values)]), "levels": b""}
    try:
        with transaction.atomic():
            SeriesCache.objects.update_or_create(run_id=run.pk, key=key, defaults=defaults)
    except IntegrityError:  # another request stored it at the same moment: a valid row either way
        pass


def _share_in_range(stats: dict, axis: str, x_min, x_max) -> float:
    if not stats:
        return 0.0
    first, last = (stats["first_time"], stats["last_time"]) if axis == "time" else (stats["first_step"],
                                                                                    stats["last_step"])
    low = first if x_min is None else max(first, x_min)
    high = last if x_max is None else min(last, x_max)
    if high < low:
        return 0.0
    return 1.0 if last <= first else (high - low) / (last - first)


def _from_cache(run_id, key, cache, plan, budget, axis, zoomed, use_raw_for_zoom, x_min, x_max,
                prefetched) -> Series:
    levels, share, raw_in_range = plan
    n = cache.n_points
    if n == 0:
        return Series(run_id, key, np.empty(0), np.empty(0), np.empty(0), 0, cache.stats)
    want = 2 * budget  # M4 over at least twice the budget's points loses little
    if zoomed and (use_raw_for_zoom or raw_in_range <= budget):
        if (run_id, key) in prefetched:
            steps, times, values = prefetched[(run_id, key)]
            return Series(run_id, key, steps, times, values, n, cache.stats)
        return _raw_range(run_id, key, cache, levels, axis, n, x_min, x_max)
    for steps, times, values in levels:  # coarsest first
        if len(steps) * share >= want or len(steps) == n:
            source = "cache" if len(steps) == n else f"level-{len(steps)}"
            return Series(run_id, key, steps, times, values, n, cache.stats, source)
    if not zoomed and levels and len(levels[-1][0]) < budget:  # the budget wants more than the cache
        steps, times, values = read_points(run_id, key)
        return Series(run_id, key, steps, times, values, n, cache.stats)
    steps, times, values = levels[-1] if levels else (np.empty(0),) * 3
    return Series(run_id, key, steps, times, values, n, cache.stats, f"level-{len(steps)}")


def _raw_range(run_id, key, cache, levels, axis, n, x_min, x_max) -> Series:
    """The raw points of a zoomed range. Steps bound the index scan; for a time range the
    finest cached level translates the times into steps (time grows with step)."""
    step_min = step_max = None
    if levels:
        steps, times, _ = levels[-1]
        x = times if axis == "time" else steps
        first = 0 if x_min is None else max(int(np.searchsorted(x, x_min, side="left")) - 1, 0)
        last = len(x) - 1 if x_max is None else min(int(np.searchsorted(x, x_max, side="right")), len(x) - 1)
        step_min = None if x_min is None else steps[first]
        step_max = None if x_max is None else steps[last]
    steps, times, values = read_points(run_id, key, step_min, step_max)
    return Series(run_id, key, steps, times, values, n, cache.stats)


def _finish(series: Series, budget: int, axis: str, x_min, x_max) -> Series:
    steps, values, times = finite(series.steps, series.values, series.times)
    x = times if axis == "time" else steps
    if axis == "time" and len(x) > 1 and np.any(np.diff(x) < 0):  # a resumed run's clock
        order = np.argsort(x, kind="stable")
        steps, values, times, x = steps[order], values[order], times[order], x[order]
    if x_min is not None or x_max is not None:
        mask = np.ones(len(x), dtype=bool)
        if x_min is not None:
            mask &= x >= x_min
        if x_max is not None:
            mask &= x <= x_max
        steps, values, times, x = steps[mask], values[mask], times[mask], x[mask]
    before = len(x)
    x, values, steps, times = downsample(x, values, budget, steps, times)
    series.steps, series.values, series.times = steps, values, times
    series.downsampled = series.source.startswith("level-") or len(x) < before
    return series
