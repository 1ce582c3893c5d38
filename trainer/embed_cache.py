"""The embedding cache: each text column is encoded once per teacher setting, then read from disk.

A cache entry is one safetensors file holding ``embeddings`` (N, D) float32, named by the
hash of its key: dataset SHA-256, teacher identity (model files + revision), pooling,
max_length, normalize, dtype and side (``question`` / ``answer``). The key fields, the row
count and the dimension are also written into the file's metadata, and checked on every
read: a truncated, garbled or mismatched file is logged, deleted and rebuilt, never used.

Files are written to a temporary name and moved into place with ``os.replace``, so a reader
never sees half a file even when two runs fill the same entry at once.

The lookup comes before any teacher is loaded: a second run over the same data never
imports transformers, let alone loads a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from trainer.config import TeacherConfig

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"  # bump when the meaning of a stored embedding changes
SIDES = ("question", "answer")


def default_cache_dir() -> Path:
    """`CUBELAB_CACHE_DIR`, or ~/.cache/cubelab."""
    env = os.environ.get("CUBELAB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cubelab"


@dataclass(frozen=True)
class CacheKey:
    dataset_sha256: str
    teacher: str  # Teacher.identity: model files + revision
    pooling: str
    max_length: int
    normalize: bool
    dtype: str
    side: str  # "question" | "answer"

    @classmethod
    def for_teacher(cls, cfg: TeacherConfig, identity: str, dataset_sha256: str, side: str) -> "CacheKey":
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        return cls(dataset_sha256, identity, cfg.pooling, cfg.max_length, cfg.normalize, cfg.dtype, side)

    def metadata(self) -> dict[str, str]:
        fields = {name: str(value) for name, value in asdict(self).items()}
        return {"format": FORMAT_VERSION, **fields}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.metadata(), sort_keys=True).encode()).hexdigest()


class EmbeddingCache:
    def __init__(self, root: Optional[str | Path] = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def path(self, key: CacheKey) -> Path:
        return self.root / "embeddings" / f"{key.digest}.safetensors"

    def load(self, key: CacheKey, rows: int) -> Optional[torch.Tensor]:
        """The stored (rows, D) float32 tensor, or None when absent or unusable (then removed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensor = _read_checked(path, key, rows)
        except Exception as error:  # truncated, garbage, or another key's data: rebuild it
            log.warning("embedding cache entry %s is unusable (%s); rebuilding it", path.name, error)
            path.unlink(missing_ok=True)
            return None
        return tensor

    def save(self, key: CacheKey, tensor: torch.Tensor) -> Path:
        from safetensors.torch import save_file

        if tensor.dim() != 2:
            raise ValueError(f"embeddings must be (N, D), got {tuple(tensor.shape)}")
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {**key.metadata(), "rows": str(tensor.shape[0]), "dim": str(tensor.shape[1])}
        temp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            save_file({"embeddings": tensor.detach().to("cpu", torch.float32).contiguous()}, str(temp), metadata=metadata)
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return path


def _read_checked(path: Path, key: CacheKey, rows: int) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        for name, value in key.metadata().items():
            if metadata.get(name) != value:
                raise ValueError(f"metadata `{name}` is {metadata.get(name)!r}, expected {value!r}")
        tensor = handle.get_tensor("embeddings")
    if tensor.dtype != torch.float32 or tensor.dim() != 2:
        raise ValueError(f"expected a 2-D float32 tensor, got {tensor.dtype} {tuple(tensor.shape)}")
    if tensor.shape[0] != rows or metadata.get("rows") != str(rows):
        raise ValueError(f"expected {rows} rows, the file holds {tensor.shape[0]}")
    if metadata.get("dim") != str(tensor.shape[1]):
        raise ValueError(f"metadata dim {metadata.get('dim')} != tensor dim {tensor.shape[1]}")
    if not np.isfinite(tensor.numpy()).all():  # numpy: no wake-up of torch's thread pool on a cache hit
        raise ValueError("non-finite values")
    return tensor


def cached_embeddings(
    cfg: TeacherConfig,
    texts: list[str],
    dataset_sha256: str,
    side: str,
    cache_dir: Optional[str | Path] = None,
    progress: bool = False,
) -> torch.Tensor:
    """(len(texts), D) float32 embeddings of ``texts`` by the teacher ``cfg``, from disk when cached.

    ``texts`` must be the ``side`` column of the dataset whose file hash is ``dataset_sha256``.
    """
    from trainer.teachers import get_teacher, teacher_identity

    cache = EmbeddingCache(cache_dir)
    key = CacheKey.for_teacher(cfg, teacher_identity(cfg), dataset_sha256, side)
    tensor = cache.load(key, rows=len(texts))
    if tensor is not None:
        log.info("embedding cache hit: %s %s (%d rows)", cfg.name, side, len(texts))
        return tensor
    tensor = get_teacher(cfg).encode(texts, progress=progress)  # (N, D) float32
    cache.save(key, tensor)
    return tensor
