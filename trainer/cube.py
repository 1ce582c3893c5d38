"""The cube: a lattice of cells that share one small network and talk to their neighbours.

``Cube(cube_config, dim)`` maps a batch of embeddings ``(B, dim)`` to ``(B, dim)``:

1. **in**: ``exact`` reshapes the embedding onto the lattice, ``k = dim // cells`` channels
   per cell (embedding index ``((x·Y + y)·Z + z)·k + c`` lands in cell ``(x, y, z)``, channel
   ``c``); ``learned`` maps ``dim → cells·k`` with ``k = ceil(dim / cells)``. Each cell's
   ``k`` channels are lifted to ``state_dim`` by a shared linear, plus a learned per-cell
   position vector.
2. **propagate** ``steps`` times: ``state += cell(gather(rms_norm(state)))`` (pre-norm residual,
   RMSNorm over channels). With the 6-neighbourhood information moves exactly one cell per step.
3. **out**: ``x + readout(norm(state))``. The readout is zero-initialised, so an untrained
   cube is exactly the identity and training starts from the "do nothing" baseline.

Early exit (``early_exit_threshold > 0``): after each step the relative change
``‖Δstate‖ / ‖state‖`` is computed per sample and averaged over the batch; once that mean
falls under the threshold the remaining steps are skipped for the whole batch. That is one
host sync per step, so it costs a little speed and breaks a ``torch.compile`` graph; it
applies in training and in evaluation alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from trainer.cells import CellUpdate
from trainer.config import ConfigError, ConfigIssue, CubeConfig, lattice_mismatch_message


@dataclass
class CubeTrace:
    """What the cube-view page draws: how each cell's state and the output evolve."""

    state_norms: torch.Tensor  # (B, steps+1, X, Y, Z) L2 norm of each cell's state; index 0 = before step 1
    outputs: torch.Tensor  # (B, steps+1, dim) the output read out after each step
    steps_run: int  # steps actually taken (< steps after an early exit; later entries repeat the last)


def channels_per_cell(cube: CubeConfig, dim: int) -> int:
    """``k``: embedding channels each cell holds (raises ConfigError for an exact misfit)."""
    if cube.projection == "exact":
        if dim % cube.cells != 0:
            raise ConfigError([ConfigIssue("cube.lattice", lattice_mismatch_message(cube.lattice, dim))])
        return dim // cube.cells
    return math.ceil(dim / cube.cells)


class Cube(nn.Module):
    """``checkpoint_steps=True`` recomputes each step in backward instead of keeping its
    activations: memory per step drops from about ``(K+1)·C + 2·H`` floats per cell to ``C``,
    for about a third more compute. Large lattices need it (see ``trainer.estimate``)."""

    def __init__(self, cube: CubeConfig, dim: int, *, checkpoint_steps: bool = False):
        super().__init__()
        self.config = cube
        self.dim = dim
        self.checkpoint_steps = checkpoint_steps
        self.k = channels_per_cell(cube, dim)
        cells, state_dim = cube.cells, cube.state_dim
        if cube.projection == "learned":
            self.project_in = nn.Linear(dim, cells * self.k)
            self.project_out = nn.Linear(cells * self.k, dim)
        self.lift = nn.Linear(self.k, state_dim)
        self.position = nn.Parameter(torch.zeros(*cube.lattice, state_dim))
        self.update = CellUpdate(cube)
        self.out_norm = nn.RMSNorm(state_dim)
        self.readout = nn.Linear(state_dim, self.k)
        # Zero-initialise the last map so the untrained cube is the identity. With `learned`
        # the per-cell readout keeps its random init: two zero maps in a row would pass no
        # gradient to either.
        last = self.project_out if cube.projection == "learned" else self.readout
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, return_trace: bool = False):
        state = self.embed(x)  # (B, X, Y, Z, C)
        threshold = self.config.early_exit_threshold
        norms, outputs, steps_run = [], [], 0
        if return_trace:
            norms.append(state.detach().norm(dim=-1))  # (B, X, Y, Z)
            outputs.append(self.read(x, state).detach())  # (B, dim)
        for _ in range(self.config.steps):
            delta = self.step_update(state)  # (B, X, Y, Z, C)
            previous, state = state, state + delta
            steps_run += 1
            if return_trace:
                norms.append(state.detach().norm(dim=-1))
                outputs.append(self.read(x, state).detach())
            if threshold > 0 and relative_change(previous, delta) < threshold:
                break
        out = self.read(x, state)  # (B, dim)
        if not return_trace:
            return out
        # After an early exit the state is frozen: repeat it so the trace keeps its shape.
        norms += [norms[-1]] * (self.config.steps - steps_run)
        outputs += [outputs[-1]] * (self.config.steps - steps_run)
        trace = CubeTrace(state_norms=torch.stack(norms, dim=1), outputs=torch.stack(outputs, dim=1), steps_run=steps_run)
        return out, trace

    def step_update(self, state: torch.Tensor) -> torch.Tensor:
        if self.checkpoint_steps and torch.is_grad_enabled():
            return checkpoint(self.update, state, use_reentrant=False)  # (B, X, Y, Z, C)
        return self.update(state)  # (B, X, Y, Z, C)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input embedding → initial lattice state."""
        B = x.shape[0]
        if self.config.projection == "learned":
            x = self.project_in(x)  # (B, cells·k)
        channels = x.reshape(B, *self.config.lattice, self.k)  # (B, X, Y, Z, k)
        return self.lift(channels) + self.position  # (B, X, Y, Z, C)

    def read(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Lattice state → output embedding, as a residual on the input."""
        cells = self.readout(self.out_norm(state))  # (B, X, Y, Z, k)
        flat = cells.reshape(x.shape[0], -1)  # (B, cells·k)
        if self.config.projection == "learned":
            flat = self.project_out(flat)  # (B, dim)
        return x + flat.to(x.dtype)  # (B, dim)


def relative_change(state: torch.Tensor, delta: torch.Tensor) -> float:
    """Mean over the batch of ‖Δstate‖ / ‖state‖ (one host sync)."""
    delta_norm = delta.detach().float().flatten(1).norm(dim=1)  # (B,)
    state_norm = state.detach().float().flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
    return (delta_norm / state_norm).mean().item()
