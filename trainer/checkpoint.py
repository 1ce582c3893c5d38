"""Checkpoints: safetensors for every tensor, JSON for everything else.

A checkpoint is a folder `checkpoints/step-000120/` holding
* `model.safetensors` — the student's weights (cube and teacher heads);
* `optimizer.safetensors` — optimizer moments and the RNG states;
* `state.json` — step, data position, schedule, early-stopping state, optimizer hyper-parameters
  and the resolved config.
It is written to a temporary folder and renamed, so a crash never leaves half a checkpoint.
Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE, OPTIMIZER_FILE, STATE_FILE = "model.safetensors", "optimizer.safetensors", "state.json"


@dataclass
class LoadedCheckpoint:
    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    state: dict[str, Any]


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, state: dict) -> int:
    """Write atomically; returns the checkpoint's size in bytes."""
    directory = Path(directory)
    temporary = directory.with_name(directory.name + ".partial")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(weights, str(temporary / MODEL_FILE))
    tensors, optimizer_json = _split_optimizer(optimizer) if optimizer else ({}, None)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(temporary / OPTIMIZER_FILE))
    (temporary / STATE_FILE).write_text(json.dumps({**state, "optimizer": optimizer_json}, indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(temporary, directory)
    return sum(f.stat().st_size for f in directory.iterdir())


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    directory = resolve_checkpoint(path)
    state = json.loads((directory / STATE_FILE).read_text())
    tensors = load_file(str(directory / OPTIMIZER_FILE))
    rng = {key.removeprefix("rng."): value for key, value in tensors.items() if key.startswith("rng.")}
    optimizer_json = state.pop("optimizer", None)
    optimizer = _join_optimizer(tensors, optimizer_json) if optimizer_json else None
    return LoadedCheckpoint(directory, load_file(str(directory / MODEL_FILE)), optimizer, rng, state)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    pointer = path / "checkpoints" / "last.json"
    if pointer.is_file():
        return path / "checkpoints" / json.loads(pointer.read_text())["name"]
    raise FileNotFoundError(f"{path}: not a checkpoint folder (no {STATE_FILE}) nor a run folder with checkpoints")


def write_pointer(checkpoints: Path, label: str, name: str, step: int) -> None:
    """checkpoints/last.json or best.json names the folder to resume from."""
    target = checkpoints / f"{label}.json"
    temporary = target.with_suffix(".json.partial")
    temporary.write_text(json.dumps({"name": name, "step": step}))
    os.replace(temporary, target)


def _split_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    full = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in full["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": full["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], optimizer_json: dict) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, slots in optimizer_json.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(slots)
    return {"state": state, "param_groups": optimizer_json["param_groups"]}
