from __future__ import annotations

import numpy as np
from django.db import models


class SeriesCache(models.Model):
    """A run's metric series, pre-reduced for display (one row per run and key).

    A small pyramid of M4 reductions of the full series: ``coarse`` holds 512 points (or the
    whole series when shorter), ``levels`` the finer ones (8× more each, while a level stays
    under a quarter of the raw points). A comparison of 100 runs × 5 keys × 50,000 steps then
    reads 500 blobs of 12 kB instead of 25 million rows; the finer levels are read only for
    the series that need them (few runs, or a zoom). Built
    when a run finishes (signals.py) or on first use; rebuilt when the run's ``last_step``
    moved on since (``run_last_step``). For a run still training, the row covers the points up
    to ``run_last_step`` and only newer points are read raw (series.py), so a live comparison
    does not re-read every point on every request.
    """

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    run_last_step = models.PositiveIntegerField(default=0)
    n_points = models.PositiveIntegerField(default=0)
    # {first, last, min, max, first_step, last_step, first_time, last_time} over every point,
    # and level_sizes: the points of each level, coarse first.
    stats = models.JSONField(default=dict)
    coarse = models.BinaryField(default=b"")
    levels = models.BinaryField()
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="seriescache_run_key")]

    def __str__(self) -> str:
        return f"{self.key} of run {self.run_id} ({self.n_points} points)"

    def level_arrays(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """[(steps, times, values)] from coarsest to finest."""
        return decode_levels(bytes(self.coarse)) + decode_levels(bytes(self.levels))


def encode_levels(levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    # Layout: count of levels, each level's length, then each level's steps, times, values
    # as little-endian float64 — np.frombuffer reads it back without a copy.
    sizes = np.array([len(level[0]) for level in levels], dtype="<f8")
    parts = [np.array([len(levels)], dtype="<f8"), sizes]
    for steps, times, values in levels:
        parts += [np.asarray(steps, "<f8"), np.asarray(times, "<f8"), np.asarray(values, "<f8")]
    return np.concatenate(parts).tobytes()


def decode_levels(blob: bytes) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    data = np.frombuffer(blob, dtype="<f8")
    if data.size == 0:
        return []
    count = int(data[0])
    sizes = data[1:1 + count].astype(np.int64)
    levels, offset = [], 1 + count
    for size in sizes:
        steps, times, values = (data[offset + i * size: offset + (i + 1) * size] for i in range(3))
        levels.append((steps, times, values))
        offset += 3 * size
    return levels
