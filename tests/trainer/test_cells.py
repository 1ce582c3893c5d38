"""The shared cell networks and the batched neighbour gather."""

from __future__ import annotations

import pytest
import torch

from trainer.cells import (
    GatedMLPCell,
    MLPCell,
    gather_neighbours,
    neighbour_offsets,
    norm_gather,
    scatter_neighbour_grad,
)


def numbered_lattice(X: int = 3, Y: int = 4, Z: int = 5) -> torch.Tensor:
    """(1, X, Y, Z, 1): each cell holds 1 + its flat index, so a gathered value names its source."""
    return (torch.arange(X * Y * Z, dtype=torch.float64) + 1).reshape(1, X, Y, Z, 1)


def test_it_lists_the_cell_first_then_its_neighbours():
    six, block = neighbour_offsets(6), neighbour_offsets(26)
    assert six[0] == block[0] == (0, 0, 0)
    assert len(set(six)) == 7 and all(sum(map(abs, d)) == 1 for d in six[1:])
    assert len(set(block)) == 27 and all(max(map(abs, d)) == 1 for d in block[1:])
    with pytest.raises(ValueError):
        neighbour_offsets(8)


def test_it_gathers_each_neighbour_with_zeros_beyond_the_edge():
    state = numbered_lattice()
    offsets = neighbour_offsets(6)
    features = gather_neighbours(state, offsets, "zero")  # (1, 3, 4, 5, 7)
    X, Y, Z = 3, 4, 5
    for i, (dx, dy, dz) in enumerate(offsets):
        for x, y, z in [(0, 0, 0), (2, 3, 4), (1, 2, 0), (1, 1, 4)]:
            nx, ny, nz = x + dx, y + dy, z + dz
            inside = 0 <= nx < X and 0 <= ny < Y and 0 <= nz < Z
            expected = state[0, nx, ny, nz, 0].item() if inside else 0.0
            assert features[0, x, y, z, i].item() == expected


def test_it_wraps_round_with_a_periodic_boundary():
    state = numbered_lattice()
    offsets = neighbour_offsets(26)
    features = gather_neighbours(state, offsets, "periodic")  # (1, 3, 4, 5, 27)
    for i, (dx, dy, dz) in enumerate(offsets):
        for x, y, z in [(0, 0, 0), (2, 3, 4), (0, 3, 2)]:
            expected = state[0, (x + dx) % 3, (y + dy) % 4, (z + dz) % 5, 0].item()
            assert features[0, x, y, z, i].item() == expected


def test_it_wraps_a_side_of_length_one_onto_itself():
    state = numbered_lattice(1, 2, 3)
    features = gather_neighbours(state, [(1, 0, 0), (-1, 0, 0)], "periodic")
    torch.testing.assert_close(features, state.expand(-1, -1, -1, -1, 2))


@pytest.mark.parametrize("neighbourhood", [6, 26])
@pytest.mark.parametrize("boundary", ["zero", "periodic"])
def test_its_hand_written_backward_matches_the_numerical_gradient(neighbourhood, boundary):
    offsets = neighbour_offsets(neighbourhood)
    state = torch.randn(2, 3, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: norm_gather(s, offsets, boundary), (state,))


@pytest.mark.parametrize("boundary", ["zero", "periodic"])
def test_its_scatter_is_the_adjoint_of_the_gather(boundary):
    # <gather(s), g> == <s, scatter(g)> for every s and g.
    offsets = neighbour_offsets(26)
    state = torch.randn(2, 2, 3, 4, 3, dtype=torch.float64)
    grad = torch.randn(2, 2, 3, 4, 27 * 3, dtype=torch.float64)
    left = (gather_neighbours(state, offsets, boundary) * grad).sum()
    right = (state * scatter_neighbour_grad(grad.clone(), offsets, boundary)).sum()
    torch.testing.assert_close(left, right)


def test_it_normalises_each_cell_without_mixing_cells():
    state = torch.randn(2, 2, 2, 3, 4)
    features = norm_gather(state, [(0, 0, 0)], "zero")  # the cell alone
    rms = features.pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)
    torch.testing.assert_close(features, state / (state.pow(2).mean(dim=-1, keepdim=True) + 1e-6).sqrt())


@pytest.mark.parametrize("cell_class", [MLPCell, GatedMLPCell])
def test_each_cell_network_maps_features_to_a_state_update(cell_class):
    torch.manual_seed(0)
    cell = cell_class(in_dim=14, hidden_dim=6, out_dim=2)
    features = torch.randn(3, 2, 2, 2, 14)
    out = cell(features)
    assert out.shape == (3, 2, 2, 2, 2)
    # One matmul over all rows: the same as running each row alone.
    torch.testing.assert_close(out.reshape(-1, 2), torch.stack([cell(row) for row in features.reshape(-1, 14)]))


def test_the_gated_cell_gates():
    cell = GatedMLPCell(in_dim=4, hidden_dim=3, out_dim=2)
    assert cell.fc_in.out_features == 6  # value and gate
    with torch.no_grad():
        cell.fc_in.weight[3:].zero_()  # gate pre-activation = its bias
        cell.fc_in.bias[3:].fill_(-30.0)  # GELU(-30) == 0: every gate shut
    torch.testing.assert_close(cell(torch.randn(5, 4)), cell.fc_out.bias.expand(5, 2))
