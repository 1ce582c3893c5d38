"""The shared cell network and the neighbour gathering that feeds it.

State lives channels-last, ``(B, X, Y, Z, C)``, so that after gathering a cell's own state
and its neighbours' into one feature vector the shared network is a single matmul over
``B·X·Y·Z`` rows. Gathering is one pad plus one slice per neighbour offset (at most 27),
concatenated along channels: no loop over samples or cells.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import CubeConfig

Offset = tuple[int, int, int]


def neighbour_offsets(neighbourhood: int) -> list[Offset]:
    """The cell itself first, then its 6 face neighbours or all 26 of the 3×3×3 block."""
    if neighbourhood == 6:
        faces = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]
        return [(0, 0, 0), *faces]
    if neighbourhood == 26:
        block = [d for d in itertools.product((-1, 0, 1), repeat=3) if d != (0, 0, 0)]
        return [(0, 0, 0), *block]
    raise ValueError(f"neighbourhood must be 6 or 26, got {neighbourhood}")


def pad_lattice(state: torch.Tensor, boundary: str) -> torch.Tensor:
    """One cell of padding on every face: zeros, or the opposite face (periodic)."""
    # state: (B, X, Y, Z, C)
    if boundary == "zero":
        return F.pad(state, (0, 0, 1, 1, 1, 1, 1, 1))  # (B, X+2, Y+2, Z+2, C)
    if boundary == "periodic":
        # F.pad's circular mode wants channels-first; wrapping each axis by hand keeps
        # the channels-last layout (and works for sides of length 1, which wrap onto themselves).
        for axis in (1, 2, 3):
            state = torch.cat([state.narrow(axis, -1, 1), state, state.narrow(axis, 0, 1)], dim=axis)
        return state  # (B, X+2, Y+2, Z+2, C)
    raise ValueError(f"boundary must be 'zero' or 'periodic', got {boundary!r}")


def unpad_lattice_grad(grad: torch.Tensor, boundary: str) -> torch.Tensor:
    """The adjoint of ``pad_lattice``: drop the padding, or fold it back onto the faces it copied."""
    # grad: (B, X+2, Y+2, Z+2, C), owned by the caller (modified in place)
    if boundary == "zero":
        return grad[:, 1:-1, 1:-1, 1:-1]  # (B, X, Y, Z, C)
    for axis in (3, 2, 1):  # undo the padding in reverse order
        n = grad.shape[axis] - 2
        inner = grad.narrow(axis, 1, n)
        inner.narrow(axis, n - 1, 1).add_(grad.narrow(axis, 0, 1))  # the front pad was the last face
        inner.narrow(axis, 0, 1).add_(grad.narrow(axis, n + 1, 1))  # the back pad was the first face
        grad = inner
    return grad  # (B, X, Y, Z, C)


def gather_neighbours(state: torch.Tensor, offsets: list[Offset], boundary: str) -> torch.Tensor:
    """Each cell's own state and its neighbours', side by side along channels.

    Feature block ``i`` of cell ``(x, y, z)`` is the state of cell ``(x, y, z) + offsets[i]``
    (zero beyond the edge, or wrapped round with a periodic boundary).
    """
    _, X, Y, Z, _ = state.shape  # (B, X, Y, Z, C)
    padded = pad_lattice(state, boundary)  # (B, X+2, Y+2, Z+2, C)
    views = [padded[:, 1 + dx : 1 + dx + X, 1 + dy : 1 + dy + Y, 1 + dz : 1 + dz + Z] for dx, dy, dz in offsets]
    return torch.cat(views, dim=-1)  # (B, X, Y, Z, K·C)


def scatter_neighbour_grad(grad: torch.Tensor, offsets: list[Offset], boundary: str) -> torch.Tensor:
    """The adjoint of ``gather_neighbours``: each feature block's gradient flows back to its source cell."""
    B, X, Y, Z, KC = grad.shape  # (B, X, Y, Z, K·C)
    C = KC // len(offsets)
    if boundary == "zero":
        # Block i of cell p came from cell p + d_i: add it there, clipped to the lattice.
        first = 1 if offsets[0] == (0, 0, 0) else 0  # the cell itself covers every cell: copy, no zero fill
        out = grad[..., :C].clone() if first else grad.new_zeros(B, X, Y, Z, C)  # (B, X, Y, Z, C)
        for i, offset in enumerate(offsets[first:], start=first):
            dst = tuple(slice(max(d, 0), n + min(d, 0)) for d, n in zip(offset, (X, Y, Z)))
            src = tuple(slice(max(-d, 0), n + min(-d, 0)) for d, n in zip(offset, (X, Y, Z)))
            out[(slice(None), *dst)] += grad[(slice(None), *src, slice(i * C, (i + 1) * C))]
        return out
    padded = grad.new_zeros(B, X + 2, Y + 2, Z + 2, C)  # (B, X+2, Y+2, Z+2, C)
    for i, (dx, dy, dz) in enumerate(offsets):
        padded[:, 1 + dx : 1 + dx + X, 1 + dy : 1 + dy + Y, 1 + dz : 1 + dz + Z] += grad[..., i * C : (i + 1) * C]
    return unpad_lattice_grad(padded, boundary)  # (B, X, Y, Z, C)


class _NormGather(torch.autograd.Function):
    """RMS-normalise each cell's state, then gather the neighbourhood, with a hand-written backward.

    Autograd's own backward for K slices of one padded tensor allocates and zero-fills a
    full padded gradient per slice and sums them (most of a training step at 8×8×12);
    this one accumulates into a single buffer. Only the state and one rstd per cell are
    saved; the normalised state is recomputed in backward.
    """

    @staticmethod
    def forward(ctx, state: torch.Tensor, offsets: list[Offset], boundary: str, eps: float) -> torch.Tensor:
        rstd = torch.rsqrt(_wide(state).pow(2).mean(dim=-1, keepdim=True) + eps)  # (B, X, Y, Z, 1)
        normed = (state * rstd).to(state.dtype)  # (B, X, Y, Z, C)
        ctx.save_for_backward(state, rstd)
        ctx.offsets, ctx.boundary = offsets, boundary
        return gather_neighbours(normed, offsets, boundary)  # (B, X, Y, Z, K·C)

    @staticmethod
    def backward(ctx, grad_features: torch.Tensor):
        state, rstd = ctx.saved_tensors
        grad_normed = _wide(scatter_neighbour_grad(grad_features, ctx.offsets, ctx.boundary))  # (B, X, Y, Z, C)
        normed = _wide(state) * rstd  # (B, X, Y, Z, C)
        # d/dx of x·rstd(x): rstd · (g − x̂ · mean(g · x̂))
        dot = (grad_normed * normed).mean(dim=-1, keepdim=True)  # (B, X, Y, Z, 1)
        grad_state = rstd * (grad_normed - normed * dot)  # (B, X, Y, Z, C)
        return grad_state.to(state.dtype), None, None, None


def _wide(t: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 → fp32 for the norm's statistics; fp32 and fp64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def norm_gather(state: torch.Tensor, offsets: list[Offset], boundary: str, eps: float = 1e-6) -> torch.Tensor:
    """``gather_neighbours(rms_norm(state))`` (no norm weight: the cell's first layer absorbs it)."""
    return _NormGather.apply(state, offsets, boundary, eps)  # (B, X, Y, Z, K·C)


class MLPCell(nn.Module):
    """in → hidden → GELU → dropout → out."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc_in = nn.Linear(in_dim, hidden_dim)
        self.drop = _dropout(dropout)
        self.fc_out = nn.Linear(hidden_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = F.gelu(self.fc_in(features))  # (..., H)
        return self.fc_out(self.drop(hidden))  # (..., C)


class GatedMLPCell(nn.Module):
    """Gated MLP (GEGLU): in → (value, gate) → value · GELU(gate) → dropout → out."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc_in = nn.Linear(in_dim, 2 * hidden_dim)  # value and gate in one matmul
        self.drop = _dropout(dropout)
        self.fc_out = nn.Linear(hidden_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc_in(features).chunk(2, dim=-1)  # (..., H) each
        return self.fc_out(self.drop(value * F.gelu(gate)))  # (..., C)


def _dropout(p: float) -> nn.Module:
    # nn.Dropout(0.0) is not free in training mode: it still draws a mask and multiplies
    # (about 15 % of a training step at 8×8×12). Without dropout the cell skips it entirely.
    return nn.Dropout(p) if p > 0 else nn.Identity()


CELLS: dict[str, type[nn.Module]] = {"mlp": MLPCell, "gmlp": GatedMLPCell}


class CellUpdate(nn.Module):
    """One propagation step's update: normalise, gather the neighbourhood, run the shared cell network."""

    def __init__(self, cube: CubeConfig):
        super().__init__()
        self.offsets = neighbour_offsets(cube.neighbourhood)
        self.boundary = cube.boundary
        self.net = CELLS[cube.cell](len(self.offsets) * cube.state_dim, cube.hidden_dim, cube.state_dim, cube.dropout)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        features = norm_gather(state, self.offsets, self.boundary)  # (B, X, Y, Z, K·C)
        return self.net(features)  # (B, X, Y, Z, C)
