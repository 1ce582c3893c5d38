"""What the cube view and the embedding projector draw, computed from a checkpoint.

    from trainer.inspect import cube_trace, projector_points
    view = cube_trace("out/demo", example_indices=[0], channel=None)   # JSON-ready dict
    cloud = projector_points("out/demo", method="pca", max_points=10_000)

Both read the checkpoint's resolved config, rebuild the data (``config`` may be passed to
point ``data.path`` elsewhere, as the worker does) and use the run's own seeded validation
split, so "validation example 3" means the same row the run was scored on.

Large lattices: the cube view keeps every ``stride``-th cell along each axis (a regular
sub-grid, the stride grown on the longest axis first) until at most ``max_cells`` remain,
so a 100×100×100 cube is drawn as 34×34×17 ≈ 19.7k cells and the page stays fast. Long
propagations lower the cap further: at most ``max_values`` = cells × (steps + 1) values are sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .config import Config, parse_config
from .data import load_pairs
from .loop import Student, split_rows
from .pairs import EmbeddedPairs

MAX_CELLS = 20_000
MAX_VALUES = 2_000_000  # cells × (steps + 1) drawn per example: a few MB of JSON at most
MAX_POINTS = 10_000


@dataclass
class Inspected:
    """A checkpoint's student in eval mode, its data and its validation rows."""

    config: Config
    pairs: EmbeddedPairs
    student: Student
    val_idx: torch.Tensor  # (V,) row indices
    step: int


def load_inspected(checkpoint: str | Path, config: Optional[Config] = None, pairs: Optional[EmbeddedPairs] = None,
                   cache_dir: Optional[str | Path] = None) -> Inspected:
    loaded = load_checkpoint(checkpoint)
    config = config or parse_config(loaded.state["config"])
    pairs = pairs if pairs is not None else load_pairs(config, cache_dir=cache_dir)
    student = Student(config, pairs)
    student.load_state_dict(loaded.model)
    student.eval()
    _, val_idx = split_rows(pairs.rows, config.train.val_fraction, config.seed)
    return Inspected(config, pairs, student, val_idx, int(loaded.state.get("step", 0)))


def sample_grid(lattice: Sequence[int], max_cells: int = MAX_CELLS) -> tuple[list[int], list[list[int]]]:
    """Per-axis strides and the kept coordinates along each axis (at most ``max_cells`` cells)."""
    if max_cells < 1:
        raise ValueError("max_cells must be ≥ 1")
    strides = [1, 1, 1]

    def kept(axis: int) -> int:
        return math.ceil(lattice[axis] / strides[axis])

    while math.prod(kept(axis) for axis in range(3)) > max_cells:
        axis = max(range(3), key=kept)  # thin the axis that still keeps the most cells
        strides[axis] += 1
    return strides, [list(range(0, lattice[axis], strides[axis])) for axis in range(3)]


@torch.no_grad()
def trace_states(student: Student, x: torch.Tensor, channel: Optional[int] = None,
                 strides: Sequence[int] = (1, 1, 1)) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Replays the cube step by step.

    Returns ``values`` (B, T+1, x, y, z): each kept cell's state norm (or ``channel`` of its
    state), every ``strides[i]``-th cell along axis i, index 0 = the lifted input before step 1;
    ``outputs`` (B, T+1, dim): index 0 = the input itself, index t = the output read out after
    step t; and the steps actually run. Sampling happens at each step, so a huge lattice never
    holds T+1 full copies of its values.
    """
    sx, sy, sz = strides
    cube = student.cube
    if channel is not None and not 0 <= channel < cube.config.state_dim:
        raise ValueError(f"channel {channel} is outside the state's 0..{cube.config.state_dim - 1}")

    def value(state: torch.Tensor) -> torch.Tensor:
        kept = state[:, ::sx, ::sy, ::sz]  # (B, x, y, z, C)
        return kept.norm(dim=-1) if channel is None else kept[..., channel].clone()  # (B, x, y, z)

    state = cube.embed(x)  # (B, X, Y, Z, C)
    values, outputs, steps_run = [value(state)], [x], 0
    threshold = cube.config.early_exit_threshold
    for _ in range(cube.config.steps):
        delta = cube.step_update(state)  # (B, X, Y, Z, C)
        previous, state = state, state + delta
        steps_run += 1
        values.append(value(state))
        outputs.append(cube.read(x, state))  # (B, dim)
        if threshold > 0 and _relative_change(previous, delta) < threshold:
            break
    values += [values[-1]] * (cube.config.steps - steps_run)  # frozen after an early exit
    outputs += [outputs[-1]] * (cube.config.steps - steps_run)
    return torch.stack(values, dim=1), torch.stack(outputs, dim=1), steps_run


def _relative_change(state: torch.Tensor, delta: torch.Tensor) -> float:
    from .cube import relative_change

    return relative_change(state, delta)


@torch.no_grad()
def cube_trace(checkpoint: str | Path, example_indices: Sequence[int], channel: Optional[int] = None,
               max_cells: int = MAX_CELLS, *, max_values: int = MAX_VALUES, config: Optional[Config] = None,
               pairs: Optional[EmbeddedPairs] = None, cache_dir: Optional[str | Path] = None) -> dict:
    """The cube view's data for validation examples ``example_indices`` (positions in the
    validation split), JSON-ready.

    ``cosine[t]``: cosine to the target (primary space) of the input (t = 0) and of the
    output read out after step t, each mapped through the primary space's head.
    """
    inspected = load_inspected(checkpoint, config, pairs, cache_dir)
    student, data = inspected.student, inspected.pairs
    V = len(inspected.val_idx)
    bad = [i for i in example_indices if not 0 <= i < V]
    if bad:
        raise ValueError(f"validation examples {bad} are outside 0..{V - 1}")
    rows = inspected.val_idx[list(example_indices)]  # (B,)
    x = data.questions[data.input_space][rows]  # (B, D_in)
    lattice = list(student.cube.config.lattice)
    T1 = student.cube.config.steps + 1
    strides, axes = sample_grid(lattice, max(1, min(max_cells, max_values // T1)))
    values, outputs, steps_run = trace_states(student, x, channel, strides)  # (B, T+1, x, y, z), (B, T+1, D_in)
    B = outputs.shape[0]
    primary = data.primary_space
    mapped = student.heads(outputs.reshape(B * T1, -1))[primary].reshape(B, T1, -1)  # (B, T+1, D_p)
    target = data.answers[primary][rows]  # (B, D_p)
    cosine = F.cosine_similarity(mapped, target[:, None, :], dim=-1)  # (B, T+1)
    sampled = values  # (B, T+1, x, y, z)
    gx, gy, gz = torch.meshgrid(*(torch.tensor(a) for a in axes), indexing="ij")
    examples = []
    for b, row in enumerate(rows.tolist()):
        example = {
            "index": int(example_indices[b]), "row": row,
            "values": [_rounded(step.flatten()) for step in sampled[b]],  # (T+1) × cells, x-major
            "cosine": _rounded(cosine[b]),
        }
        if data.texts:
            example["question"], example["answer"] = data.texts[row]
        examples.append(example)
    return {
        "checkpoint_step": inspected.step, "lattice": lattice, "strides": strides,
        "cells_shown": int(gx.numel()), "cells": math.prod(lattice),
        "coords": {"x": gx.flatten().tolist(), "y": gy.flatten().tolist(), "z": gz.flatten().tolist()},
        "steps": student.cube.config.steps, "steps_run": steps_run, "channel": channel,
        "state_dim": student.cube.config.state_dim, "validation_size": V, "examples": examples,
    }


@torch.no_grad()
def projector_points(checkpoint: str | Path, method: str = "pca", max_points: int = MAX_POINTS, *,
                     components: int = 3, lines: int = 20, seed: int = 0, config: Optional[Config] = None,
                     pairs: Optional[EmbeddedPairs] = None, cache_dir: Optional[str | Path] = None) -> dict:
    """Teacher question, teacher answer and cube output (primary space) for the validation set,
    projected together to ``components`` dimensions; at most ``max_points`` points in all
    (a seeded sample of validation rows, three points each). ``method="umap"`` falls back to
    PCA when the ``umap`` package is not installed (the answer says which was used)."""
    if method not in ("pca", "umap"):
        raise ValueError(f"unknown projection `{method}`: use pca or umap")
    inspected = load_inspected(checkpoint, config, pairs, cache_dir)
    data, primary = inspected.pairs, inspected.pairs.primary_space
    rows = inspected.val_idx
    keep = max(1, max_points // 3)
    if len(rows) > keep:
        chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:keep]
        rows = rows[chosen.sort().values]
    outputs = []
    for start in range(0, len(rows), 1024):
        batch = data.questions[data.input_space][rows[start : start + 1024]]
        outputs.append(inspected.student(batch)[primary])
    kinds = {"question": data.questions[primary][rows], "answer": data.answers[primary][rows], "output": torch.cat(outputs)}
    stacked = torch.cat([F.normalize(t.float(), dim=-1) for t in kinds.values()])  # (3N, D_p)
    projected, used, explained = _project(stacked, method, components, seed)  # (3N, components)
    n = len(rows)
    points = {}
    for i, kind in enumerate(kinds):
        part = projected[i * n : (i + 1) * n]
        points[kind] = {axis: _rounded(part[:, a]) for a, axis in enumerate("xyz"[:components])}
        if data.texts:
            points[kind]["text"] = [data.texts[r][1 if kind == "answer" else 0] for r in rows.tolist()]
    return {
        "checkpoint_step": inspected.step, "method": used, "explained_variance": explained,
        "components": components, "rows": rows.tolist(), "validation_size": len(inspected.val_idx),
        "points": points, "lines": list(range(min(lines, n))),  # indices into rows whose q→out→a to draw
    }


def pca(matrix: torch.Tensor, components: int) -> tuple[torch.Tensor, list[float]]:
    """Exact PCA by SVD of the centred data, each axis' sign fixed so the result is deterministic."""
    centred = matrix.double() - matrix.double().mean(dim=0)  # (N, D)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (r, D)
    axes = vh[:components]  # (c, D)
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))  # (c, 1)
    axes = axes * signs
    variance = s.pow(2)
    explained = (variance[:components] / variance.sum().clamp_min(1e-30)).tolist()
    projected = centred @ axes.T  # (N, c)
    if projected.shape[1] < components:  # fewer rows or dimensions than components: pad
        projected = F.pad(projected, (0, components - projected.shape[1]))
    return projected.float(), [round(v, 6) for v in explained]


def _project(matrix: torch.Tensor, method: str, components: int, seed: int) -> tuple[torch.Tensor, str, list[float]]:
    if method == "umap":
        try:
            import umap  # optional: not a requirement of cubelab
        except ImportError:
            method = "pca"
        else:
            reducer = umap.UMAP(n_components=components, random_state=seed)
            return torch.from_numpy(reducer.fit_transform(matrix.numpy())).float(), "umap", []
    projected, explained = pca(matrix, components)
    return projected, "pca", explained


def _rounded(values: torch.Tensor, digits: int = 5) -> list[float]:
    return [round(v, digits) for v in values.float().tolist()]
