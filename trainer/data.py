"""Turn `config.data` into EmbeddedPairs: vectors straight from the file, text through teachers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .config import Config, ConfigError, ConfigIssue
from .pairs import EmbeddedPairs
from .vectors import VECTOR_SUFFIXES, load_vector_pairs


def data_kind(config: Config) -> str:
    if config.data.kind:
        return config.data.kind
    if Path(config.data.path).suffix.lower() in VECTOR_SUFFIXES:
        return "vectors"
    from .text_data import infer_kind

    return infer_kind(config.data.path)


def input_dim(config: Config) -> Optional[int]:
    """The embedding dimension the cube will read, known without loading the data or a
    teacher: a vector file's header, or the first teacher's `config.json`. None when it
    cannot be told that cheaply (the full load then checks it)."""
    try:
        if data_kind(config) == "vectors":
            from .vectors import vector_dim

            return vector_dim(config.data.path)
        if not config.teachers:
            return None
        from .teachers import resolve_teacher_path, teacher_hidden_size

        return teacher_hidden_size(resolve_teacher_path(config.teachers[0]))
    except Exception:  # unreadable file, unknown teacher: the full load says what is wrong
        return None


def load_pairs(config: Config, cache_dir: Optional[str | Path] = None, progress: bool = False) -> EmbeddedPairs:
    kind = data_kind(config)
    if kind == "vectors":
        return load_vector_pairs(config.data.path, config.task, config.data.max_rows, config.data.max_bytes)
    if config.task == "dialogue" and kind == "corpus":
        raise ConfigError([ConfigIssue("data.kind", "the dialogue task needs question/answer pairs, not a corpus")])
    from .text_pairs import embed_text_pairs  # imports transformers only when text data are used

    pairs = embed_text_pairs(config, cache_dir=cache_dir, progress=progress)
    if config.task == "autoencoder":
        pairs = EmbeddedPairs(
            questions=pairs.questions,
            answers=pairs.questions,
            input_space=pairs.input_space,
            primary_space=pairs.primary_space,
            sha256=pairs.sha256,
            texts=[(q, q) for q, _ in pairs.texts] if pairs.texts else None,
            teacher_weights=pairs.teacher_weights,
        )
    return pairs
