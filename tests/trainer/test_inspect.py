"""trainer.inspect: the cube view's trace and the projector's points, from a real checkpoint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.inspect import cube_trace, load_inspected, projector_points, sample_grid, trace_states
from trainer.loop import train

from .helpers import make_config, make_vector_file


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny finished run (2×2×4 lattice, 16-D vectors, 3 steps) with its checkpoints."""
    folder = tmp_path_factory.mktemp("inspect")
    vectors = make_vector_file(folder / "pairs.safetensors", rows=96)
    config = make_config(vectors, cube={"steps": 3}, train={"epochs": 2, "batch_size": 16})
    train(config, out_dir=folder / "run")
    return folder / "run"


def test_it_traces_every_step_of_the_chosen_examples(run_dir):
    view = cube_trace(run_dir, [0, 2])
    assert view["lattice"] == [2, 2, 4] and view["steps"] == 3 and view["cells_shown"] == 16
    assert len(view["coords"]["x"]) == 16 and view["coords"]["z"][:4] == [0, 1, 2, 3]
    assert [e["index"] for e in view["examples"]] == [0, 2]
    for example in view["examples"]:
        assert len(example["values"]) == 4 and all(len(step) == 16 for step in example["values"])
        assert all(v >= 0 for step in example["values"] for v in step)  # norms
        assert len(example["cosine"]) == 4


def test_step_zero_is_the_input_and_the_last_step_is_the_cube_output(run_dir):
    inspected = load_inspected(run_dir)
    x = inspected.pairs.questions["vectors"][inspected.val_idx[:3]]
    values, outputs, steps_run = trace_states(inspected.student, x)
    assert values.shape == (3, 4, 2, 2, 4) and outputs.shape == (3, 4, 16) and steps_run == 3
    assert torch.equal(outputs[:, 0], x)
    torch.testing.assert_close(outputs[:, -1], inspected.student.cube(x))
    # The trace's cosine at step 0 is the question's own cosine to its answer.
    row = int(inspected.val_idx[0])
    view = cube_trace(run_dir, [0])
    expected = F.cosine_similarity(x[:1], inspected.pairs.answers["vectors"][row : row + 1]).item()
    assert view["examples"][0]["cosine"][0] == pytest.approx(expected, abs=1e-4)


def test_a_channel_shows_that_channel_of_the_state(run_dir):
    inspected = load_inspected(run_dir)
    x = inspected.pairs.questions["vectors"][inspected.val_idx[:1]]
    norms, _, _ = trace_states(inspected.student, x)
    channel, _, _ = trace_states(inspected.student, x, channel=5)
    assert (channel.abs() <= norms + 1e-6).all() and (channel < 0).any()
    with pytest.raises(ValueError):
        trace_states(inspected.student, x, channel=8)


def test_a_strided_trace_keeps_exactly_the_sub_grid_of_the_full_one(run_dir):
    inspected = load_inspected(run_dir)
    x = inspected.pairs.questions["vectors"][inspected.val_idx[:2]]
    full, _, _ = trace_states(inspected.student, x)  # (2, 4, 2, 2, 4)
    strided, _, _ = trace_states(inspected.student, x, strides=(1, 2, 3))
    assert strided.shape == (2, 4, 2, 1, 2)
    torch.testing.assert_close(strided, full[:, :, ::1, ::2, ::3])


def test_large_lattices_are_sampled_on_a_regular_sub_grid(run_dir):
    strides, axes = sample_grid([100, 100, 100], 20_000)
    assert len(axes[0]) * len(axes[1]) * len(axes[2]) <= 20_000
    assert all(axis[:2] == [0, stride] for axis, stride in zip(axes, strides))
    assert sample_grid([2, 2, 4], 20_000)[0] == [1, 1, 1]
    view = cube_trace(run_dir, [1], max_cells=5)
    assert view["cells_shown"] <= 5 and len(view["examples"][0]["values"][0]) == view["cells_shown"]
    long = cube_trace(run_dir, [1], max_values=40)  # 4 steps' values per cell: at most 10 cells
    assert long["cells_shown"] <= 10 and long["strides"] != [1, 1, 1]


def test_out_of_range_examples_are_refused(run_dir):
    with pytest.raises(ValueError, match="outside"):
        cube_trace(run_dir, [10_000])


def test_the_projector_caps_points_and_pca_is_deterministic(run_dir):
    first = projector_points(run_dir, max_points=15, components=2)
    second = projector_points(run_dir, max_points=15, components=2)
    assert first["method"] == "pca" and first == second
    assert set(first["points"]) == {"question", "answer", "output"}
    total = sum(len(kind["x"]) for kind in first["points"].values())
    assert total == 15 and len(first["rows"]) == 5
    assert set(first["points"]["output"]) == {"x", "y"}
    assert 0 < sum(first["explained_variance"]) <= 1 + 1e-6
    full = projector_points(run_dir)  # 96 rows → 10 validation rows (val_fraction 0.1), all kept
    assert len(full["rows"]) == full["validation_size"] == 10
    assert "z" in full["points"]["question"]
