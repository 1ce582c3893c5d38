"""Small builders shared by trainer tests: tiny configs and synthetic vector data."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from trainer.config import Config, parse_config
from trainer.vectors import save_vector_pairs


def make_vector_file(path: Path, rows: int = 96, dim: int = 16, seed: int = 0, noise: float = 0.0) -> Path:
    """Question/answer vectors where the answer is a fixed smooth map of the question."""
    g = torch.Generator().manual_seed(seed)
    questions = F.normalize(torch.randn(rows, dim, generator=g), dim=-1)
    mix = torch.eye(dim) + 0.5 * torch.roll(torch.eye(dim), 1, dims=1)  # local: each channel mixes with a neighbour
    answers = F.normalize(questions @ mix + noise * torch.randn(rows, dim, generator=g), dim=-1)
    save_vector_pairs(path, questions, answers)
    return path


def make_config(data_path: Path | str, **sections) -> Config:
    body = {
        "task": "dialogue",
        "seed": 0,
        "cube": {"lattice": [2, 2, 4], "state_dim": 8, "hidden_dim": 16, "steps": 2},
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.01},
        "data": {"path": str(data_path)},
        "teachers": [],
    }
    for section, values in sections.items():
        body[section] = {**body.get(section, {}), **values} if isinstance(values, dict) else values
    return parse_config(body)
