"""M4 downsampling: first/last/min/max and spikes survive, the budget holds, striding is not it."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.compare.downsample import downsample, m4_indices


def noisy(n=50_000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.arange(n, dtype=np.float64)
    y = np.exp(-x / 20_000) + 0.01 * rng.standard_normal(n)
    return x, y


@pytest.mark.parametrize("budget", [4, 40, 401, 4000])
def test_it_keeps_first_last_min_max_and_respects_the_budget(budget):
    x, y = noisy()
    kept_x, kept_y = downsample(x, y, budget)
    assert len(kept_x) <= budget
    assert kept_x[0] == x[0] and kept_x[-1] == x[-1]
    assert kept_y.min() == y.min() and kept_y.max() == y.max()
    assert np.all(np.diff(kept_x) > 0)  # still in x order, no duplicates


def test_it_keeps_a_one_step_spike_that_striding_would_drop():
    x, y = noisy()
    y[31_337] = 9.0  # one bad batch
    y[7_001] = -9.0
    kept_x, kept_y = downsample(x, y, 200)
    assert 31_337 in kept_x and 9.0 in kept_y
    assert 7_001 in kept_x and -9.0 in kept_y
    strided = x[:: len(x) // 200]
    assert 31_337 not in strided  # what plain striding would have shown


def test_it_keeps_each_buckets_extremes():
    x, y = noisy(10_000, seed=3)
    keep = m4_indices(x, y, 400)  # 100 buckets of 100 steps
    for bucket in range(100):
        lo, hi = bucket * 100, (bucket + 1) * 100
        inside = keep[(keep >= lo) & (keep < hi)]
        assert lo in inside and hi - 1 in inside  # first and last of the bucket
        assert y[inside].min() == y[lo:hi].min() and y[inside].max() == y[lo:hi].max()


def test_it_leaves_short_series_and_carries_extra_columns():
    x = np.arange(10.0)
    y = x ** 2
    times = 1000 + x
    kept_x, kept_y, kept_t = downsample(x, y, 50, times)
    assert np.array_equal(kept_x, x) and np.array_equal(kept_t, times)
    assert list(m4_indices(x, y, 2)) == [0, 9]
