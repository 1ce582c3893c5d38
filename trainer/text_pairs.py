"""Text data → EmbeddedPairs: read the file, embed both columns with every teacher, via the cache.

Each teacher gives one embedding space, named after the teacher (``minilm``, or
``minilm#2`` when two teachers share a name). The cube reads the first teacher's space;
metrics use ``distill.eval_teacher`` or, by default, that same first space. A corpus
(autoencoder data) is encoded once: its answers are the very tensors of its questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from trainer.config import Config, ConfigError, ConfigIssue
from trainer.embed_cache import cached_embeddings
from trainer.pairs import EmbeddedPairs
from trainer.teachers import resolve_teacher_path
from trainer.text_data import read_text_dataset

NO_TEACHER = "text data need at least one teacher: add `teachers: [{name: minilm}]`"


def embed_text_pairs(config: Config, cache_dir: Optional[str | Path] = None, progress: bool = False) -> EmbeddedPairs:
    if not config.teachers:
        raise ConfigError([ConfigIssue("teachers", NO_TEACHER)])
    spaces = space_names([teacher.name for teacher in config.teachers])
    primary = _primary_space(config, spaces)
    for teacher in config.teachers:
        resolve_teacher_path(teacher)  # a missing teacher fails now, before any encoding

    kind = config.data.kind if config.data.kind in ("dialogue", "corpus") else None
    dataset = read_text_dataset(config.data.path, kind, max_rows=config.data.max_rows, max_bytes=config.data.max_bytes)
    questions_text = [question for question, _ in dataset.pairs]
    answers_text = [answer for _, answer in dataset.pairs]

    questions, answers = {}, {}
    for space, teacher in zip(spaces, config.teachers):
        questions[space] = cached_embeddings(teacher, questions_text, dataset.sha256, "question", cache_dir, progress)
        if dataset.kind == "corpus":
            answers[space] = questions[space]  # the same texts: encode once
        else:
            answers[space] = cached_embeddings(teacher, answers_text, dataset.sha256, "answer", cache_dir, progress)
    return EmbeddedPairs(
        questions=questions,
        answers=answers,
        input_space=spaces[0],
        primary_space=primary,
        sha256=dataset.sha256,
        texts=list(dataset.pairs),
        teacher_weights={space: teacher.weight for space, teacher in zip(spaces, config.teachers)},
    )


def space_names(names: list[str]) -> list[str]:
    """Teacher names made unique: a repeated name gets `#2`, `#3`, ..."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def _primary_space(config: Config, spaces: list[str]) -> str:
    wanted = config.distill.eval_teacher
    if wanted is None:
        return spaces[0]
    if wanted in spaces:
        return wanted
    known = ", ".join(f"`{space}`" for space in spaces)
    raise ConfigError([ConfigIssue("distill.eval_teacher", f"no teacher is named `{wanted}`; the teachers are {known}")])
