"""A running run's series: the points up to the live cache row's last step come from the row,
only newer ones are read raw, and the answer equals reading every point raw — while points are
appended, after a resumed attempt rewrites the tail, and once the run finishes."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.compare import series as series_module
from webapp.compare.models import SeriesCache
from webapp.compare.series import LIVE_TAIL_MIN, load_series
from webapp.runs.models import MetricPoint, Run

pytestmark = pytest.mark.django_db

KEYS = ["train/loss", "val/mrr"]
# (budget, axis, x_min, x_max): the whole series reduced, at full resolution, zoomed by step and by time
REQUESTS = [(100, "step", None, None), (100_000, "step", None, None), (50, "step", 700.0, 2600.0),
            (80, "time", 1500.0, None)]


@pytest.fixture
def run(alice, make_dataset):
    return Run.objects.create(name="live", owner=alice, dataset=make_dataset(alice), status="running", attempt=1,
                              config={"task": "dialogue"})


def append(run: Run, first: int, count: int, offset: float = 0.0) -> None:
    """``count`` steps from ``first``: a loss every step (an infinity every 97th: SQLite cannot store a NaN), an MRR every 10th."""
    steps = np.arange(first, first + count)
    loss = np.exp(-steps / 900.0) + offset
    loss[steps % 97 == 0] = np.inf
    points = [MetricPoint(run=run, key="train/loss", step=int(s), value=float(v), time=1000.0 + s)
              for s, v in zip(steps, loss)]
    points += [MetricPoint(run=run, key="val/mrr", step=int(s), value=float(s) / 10_000 + offset, time=1000.0 + s)
               for s in steps if s % 10 == 0]
    MetricPoint.objects.bulk_create(points)
    Run.objects.filter(pk=run.pk).update(last_step=first + count - 1)
    run.refresh_from_db()


def uncached(run: Run, budget, axis, x_min, x_max, monkeypatch):
    """The answer from raw points alone: no live row is read or written."""
    with monkeypatch.context() as patch:
        patch.setattr(series_module, "_live_rows", lambda runs, keys: {})
        patch.setattr(series_module, "LIVE_TAIL_MIN", 10**12)
        return load_series([run], KEYS, budget, axis, x_min, x_max)


def assert_same_answer(run: Run, monkeypatch) -> list:
    answers = []
    for budget, axis, x_min, x_max in REQUESTS:
        expected = uncached(run, budget, axis, x_min, x_max, monkeypatch)
        got = load_series([run], KEYS, budget, axis, x_min, x_max)
        for want, have in zip(expected, got, strict=True):
            assert (have.run_id, have.key, have.n_points, have.downsampled) == (
                want.run_id, want.key, want.n_points, want.downsampled)
            assert have.stats == want.stats
            for name in ("steps", "times", "values"):
                assert np.array_equal(getattr(have, name), getattr(want, name), equal_nan=True), (have.key, name)
        answers.append(got)
    return answers


@pytest.fixture
def raw_reads(monkeypatch):
    """How many points each raw read of a series returned, in order."""
    reads: list[tuple[str, int]] = []
    real = series_module.read_points

    def spy(run_id, key, step_min=None, step_max=None):
        found = real(run_id, key, step_min, step_max)
        reads.append((key, len(found[0])))
        return found

    monkeypatch.setattr(series_module, "read_points", spy)
    return reads


def live_row(run: Run, key: str = "train/loss") -> SeriesCache:
    return SeriesCache.objects.get(run=run, key=key)


def test_a_running_series_is_cached_up_to_a_step_and_read_raw_after_it(run, raw_reads, monkeypatch):
    append(run, 0, 300)
    assert_same_answer(run, monkeypatch)
    assert not SeriesCache.objects.filter(run=run).exists()  # a short tail is not worth a row yet

    append(run, 300, LIVE_TAIL_MIN)  # the raw tail reaches the threshold: the row is written
    assert_same_answer(run, monkeypatch)
    row = live_row(run)
    assert row.stats["live"] and row.n_points == 300 + LIVE_TAIL_MIN and row.run_last_step == run.last_step
    assert not SeriesCache.objects.filter(run=run, key="val/mrr").exists()  # 130 points: still raw

    append(run, 300 + LIVE_TAIL_MIN, 250)
    raw_reads.clear()
    got = load_series([run], KEYS, 100)
    assert raw_reads == [("train/loss", 250), ("val/mrr", 155)]  # only the loss points after the row
    assert got[0].source == "live" and got[0].n_points == 1550 and got[1].source == "raw"
    assert_same_answer(run, monkeypatch)
    assert live_row(run).n_points == 1300  # 250 new points: below the threshold, the row stays

    append(run, 1550, LIVE_TAIL_MIN)
    assert_same_answer(run, monkeypatch)
    assert live_row(run).n_points == 1550 + LIVE_TAIL_MIN  # folded in


def test_a_resumed_attempt_that_rewrites_the_tail_is_read_afresh(run, monkeypatch):
    append(run, 0, 2000)
    assert_same_answer(run, monkeypatch)
    assert live_row(run).n_points == 2000
    # The attempt is lost; the next one resumes from step 1200: the points after it are dropped
    # (prepare_resume) and written again, with other values.
    MetricPoint.objects.filter(run=run, step__gt=1200).delete()
    Run.objects.filter(pk=run.pk).update(last_step=1200, attempt=2)
    run.refresh_from_db()
    append(run, 1201, 900, offset=5.0)
    answers = assert_same_answer(run, monkeypatch)
    full = answers[1][0]  # at full resolution
    assert full.stats["last"] == pytest.approx(np.exp(-2100 / 900.0) + 5.0)
    assert full.stats["max"] == pytest.approx(np.exp(-1201 / 900.0) + 5.0)


def test_a_finished_run_replaces_its_live_row_with_the_cache(run):
    append(run, 0, 2000)
    load_series([run], KEYS, 100)
    assert live_row(run).stats["live"]
    Run.objects.filter(pk=run.pk).update(status="succeeded")
    run.refresh_from_db()
    got = load_series([run], KEYS, 100_000)  # full resolution: every finite point
    row = live_row(run)
    assert not row.stats.get("live") and row.stats["level_sizes"][0] <= series_module.LEVEL_BASE
    loss = MetricPoint.objects.filter(run=run, key="train/loss").order_by("step")
    finite = [(point.step, point.value) for point in loss if np.isfinite(point.value)]
    assert got[0].n_points == 2000 and got[0].steps.tolist() == [step for step, _ in finite]
    assert got[0].values.tolist() == [value for _, value in finite]
