"""Vector-pair data files: the trainer's input when embeddings were computed elsewhere.

Accepted layouts (read without pickle):
* `.safetensors` with `questions` and `answers` (N, D) tensors, or `embeddings` (N, D) for an
  autoencoder;
* `.npz` with the same keys;
* `.npy` of shape (N, D) (autoencoder) or (N, 2, D) (question, answer pairs).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import load_file

from .pairs import EmbeddedPairs

VECTOR_SUFFIXES = (".safetensors", ".npy", ".npz")
SPACE = "vectors"


class VectorDataError(ValueError):
    pass


def load_vector_pairs(path: str | Path, task: str, max_rows: int, max_bytes: int) -> EmbeddedPairs:
    path = Path(path)
    if not path.is_file():
        raise VectorDataError(f"{path.name}: file not found")
    size = path.stat().st_size
    if size > max_bytes:
        raise VectorDataError(f"{path.name}: {size:,} bytes is over the limit of {max_bytes:,} (data.max_bytes)")
    questions, answers = _read_arrays(path)
    for name, tensor in (("questions", questions), ("answers", answers)):
        _check_tensor(path.name, name, tensor, max_rows)
    if questions.shape[0] != answers.shape[0]:
        raise VectorDataError(f"{path.name}: {questions.shape[0]} questions but {answers.shape[0]} answers")
    if task == "autoencoder":
        answers = questions
    return EmbeddedPairs(
        questions={SPACE: questions},
        answers={SPACE: answers},
        input_space=SPACE,
        primary_space=SPACE,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def save_vector_pairs(path: str | Path, questions: torch.Tensor, answers: torch.Tensor) -> None:
    from safetensors.torch import save_file

    save_file({"questions": questions.float().contiguous(), "answers": answers.float().contiguous()}, str(path))


def vector_dim(path: str | Path) -> Optional[int]:
    """The vectors' dimension from the file's header alone (no array is read)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            names = set(handle.keys())
            name = "questions" if "questions" in names else "embeddings" if "embeddings" in names else None
            return handle.get_slice(name).get_shape()[-1] if name else None
    if suffix == ".npy":
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[-1])
    if suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            name = "questions.npy" if "questions.npy" in names else "embeddings.npy" if "embeddings.npy" in names else None
            if name is None:
                return None
            with archive.open(name) as handle:
                major, _ = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, _ = read_header(handle)
                return int(shape[-1])
    return None


def _read_arrays(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            tensors = load_file(str(path))
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                tensors = {key: torch.from_numpy(archive[key]) for key in archive.files}
        elif suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            if array.ndim == 3 and array.shape[1] == 2:
                return torch.from_numpy(array[:, 0]).float(), torch.from_numpy(array[:, 1]).float()
            tensors = {"embeddings": torch.from_numpy(array)}
        else:
            raise VectorDataError(f"{path.name}: not a vector file (expected one of {', '.join(VECTOR_SUFFIXES)})")
    except VectorDataError:
        raise
    except Exception as error:  # a corrupt file must say so, not crash deep inside numpy
        raise VectorDataError(f"{path.name}: cannot read vectors: {error}") from None
    if "questions" in tensors and "answers" in tensors:
        return tensors["questions"].float(), tensors["answers"].float()
    if "embeddings" in tensors:
        embeddings = tensors["embeddings"].float()
        return embeddings, embeddings
    raise VectorDataError(
        f"{path.name}: expected tensors `questions` and `answers` (or `embeddings`), found {sorted(tensors) or 'none'}"
    )


def _check_tensor(file: str, name: str, tensor: torch.Tensor, max_rows: int) -> None:
    if tensor.dim() != 2:
        raise VectorDataError(f"{file}: `{name}` must be 2-D (rows, dim), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] < 4:
        raise VectorDataError(f"{file}: `{name}` has {tensor.shape[0]} rows; at least 4 are needed to train and validate")
    if tensor.shape[0] > max_rows:
        raise VectorDataError(f"{file}: {tensor.shape[0]:,} rows is over the limit of {max_rows:,} (data.max_rows)")
    bad = (~torch.isfinite(tensor)).any(dim=1).nonzero().flatten()
    if len(bad):
        rows = ", ".join(str(int(r)) for r in bad[:5])
        raise VectorDataError(f"{file}: `{name}` has NaN or inf values in {len(bad)} row(s), first at row {rows}")
