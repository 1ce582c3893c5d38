"""Analytic cost of a cube, for pre-flight checks before anything is allocated.

``estimate(cube, dim, batch_size)`` returns

* ``parameters``: the exact number of trainable parameters of ``Cube(cube, dim)``;
* ``forward_flops`` / ``flops_per_step``: matmul FLOPs (2·m·n·k per product, the convention
  of ``torch.utils.flop_counter``) of one forward pass, and of one training step: forward +
  backward, where every product costs 2× its forward FLOPs again except the first, whose
  input needs no gradient, so a step is just under 3× forward;
* ``activation_bytes``: fp32 bytes autograd keeps for backward in one training batch (the
  tensors a ``saved_tensors_hooks`` count sees, shared storage counted once);
* ``state_bytes``: one copy of the lattice state, ``batch · cells · state_dim · 4``.

Elementwise work (norms, GELU, the neighbour gather, AdamW) is not in the FLOPs; it is what
keeps the achieved rate below a dense matmul's.
"""

from __future__ import annotations

from trainer.config import CubeConfig
from trainer.cube import channels_per_cell

FP32 = 4


def estimate(cube: CubeConfig, dim: int, batch_size: int, *, checkpoint_steps: bool = False) -> dict:
    k = channels_per_cell(cube, dim)  # raises ConfigError for an exact misfit
    cells, C, H, T = cube.cells, cube.state_dim, cube.hidden_dim, cube.steps
    K = cube.neighbourhood + 1  # the cell itself and its neighbours
    rows = batch_size * cells  # one row per (sample, cell): the shared network's matmul height
    fc_in_out = 2 * H if cube.cell == "gmlp" else H  # gmlp's first layer yields value and gate

    params = (k * C + C) + cells * C  # lift, per-cell position
    params += (K * C * fc_in_out + fc_in_out) + (H * C + C)  # the shared cell network
    params += C + (C * k + k)  # out_norm, readout
    if cube.projection == "learned":
        params += (dim * cells * k + cells * k) + (cells * k * dim + dim)

    first = 2 * rows * k * C  # the lift
    per_step = 2 * rows * (K * C * fc_in_out + H * C)
    last = 2 * rows * C * k  # the readout
    if cube.projection == "learned":
        first = 2 * batch_size * dim * cells * k  # project_in is now the first product
        last += 2 * rows * k * C + 2 * batch_size * cells * k * dim  # the lift, project_out
    forward = first + T * per_step + last
    training = 3 * forward - first
    if checkpoint_steps:
        # Backward re-runs each step's forward up to the last tensor it needs: fc_in, not fc_out.
        training += T * 2 * rows * K * C * fc_in_out

    return {
        "parameters": params,
        "forward_flops": forward,
        "flops_per_step": training,
        "activation_bytes": activation_bytes(cube, dim, batch_size, checkpoint_steps=checkpoint_steps),
        "state_bytes": rows * C * FP32,
    }


def activation_bytes(cube: CubeConfig, dim: int, batch_size: int, *, checkpoint_steps: bool = False) -> int:
    """fp32 bytes saved for backward, counted per (sample, cell) row."""
    k = channels_per_cell(cube, dim)
    C, H, T = cube.state_dim, cube.hidden_dim, cube.steps
    K = cube.neighbourhood + 1
    rows = batch_size * cube.cells
    # One step keeps: its input state and one rstd (the norm-gather), the gathered features
    # (fc_in's input), and the hidden layer twice: the activation's input and fc_out's input
    # (gmlp: fc_in's 2H output, GELU(gate) and the product).
    hidden = 4 * H if cube.cell == "gmlp" else 2 * H
    step_floats = (C + 1) + K * C + hidden
    mask_bytes = 4 * H if cube.dropout > 0 else 0  # dropout's mask: float on CPU (CUDA keeps a bool)
    if checkpoint_steps:
        # Only each step's input survives; one step's activations live again during backward.
        steps_bytes = rows * (T * C + step_floats) * FP32 + rows * mask_bytes
    else:
        steps_bytes = rows * T * (step_floats * FP32 + mask_bytes)
    # The lift's input (k), and the out_norm + readout: final state, rstd, normalised, its copy.
    ends = rows * (k + 3 * C + 1) * FP32
    if cube.projection == "learned":
        ends += batch_size * dim * FP32  # project_in's input; project_out's is the readout output
        ends += rows * k * FP32
    return steps_bytes + ends


def fits_in(cube: CubeConfig, dim: int, batch_size: int, available_bytes: int, *, checkpoint_steps: bool = False) -> bool:
    """Rough pre-flight: activations, twice more for transients, plus weights with AdamW state."""
    numbers = estimate(cube, dim, batch_size, checkpoint_steps=checkpoint_steps)
    transient = 2 * numbers["state_bytes"] * (cube.neighbourhood + 1)  # a step's features and their gradient
    return numbers["activation_bytes"] + transient + 4 * numbers["parameters"] * FP32 <= available_bytes
