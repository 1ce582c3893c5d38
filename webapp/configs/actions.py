"""Validation of configs as users write them, and saving them.

A config the user writes usually has no ``data`` section: the dataset picked for the run
fills ``data.path`` and ``data.kind`` (``resolve_config``). Every problem comes back as
``[{path, message}]`` from the trainer's own schema (``trainer.config``).
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from trainer.config import Config as TrainerConfig
from trainer.config import ConfigError, ConfigIssue, check_dimension, parse_config, read_yaml

from .models import Config

# Output dimension of teachers the platform knows without loading them: lets a lattice that
# cannot hold the embeddings be refused at submit instead of minutes later in the worker.
# (names as trainer.teachers.MINILM_NAMES spells them, lower-case)
KNOWN_TEACHER_DIMS = {"minilm": 384, "all-minilm-l6-v2": 384, "sentence-transformers/all-minilm-l6-v2": 384}
PLACEHOLDER_DATA_PATH = "dataset.jsonl"  # stands in for the dataset chosen later


class ConfigRejected(Exception):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors))


def teacher_dimension(config: TrainerConfig) -> Optional[int]:
    """The cube's input dimension when the first teacher is one we know, else None."""
    # (trainer.teachers knows more but imports torch and transformers: not in the web process)
    if not config.teachers or config.teachers[0].path:
        return None
    return KNOWN_TEACHER_DIMS.get(config.teachers[0].name.lower())


def resolve_config(
    config_yaml: Optional[str] = None, config: Optional[dict] = None, *, data_path: Optional[str] = None,
    data_kind: Optional[str] = None,
) -> TrainerConfig:
    """Parse YAML text or a mapping into a validated trainer Config, or raise ConfigRejected.

    ``data_path``/``data_kind`` (the chosen dataset) replace whatever the user wrote there;
    without them a placeholder path lets a config be validated before a dataset is chosen.
    """
    try:
        raw: Any = read_yaml(config_yaml) if config_yaml is not None else copy.deepcopy(config)
        if raw is None:
            raise ConfigError([ConfigIssue("", "the config is empty")])
        if isinstance(raw, dict):
            data = raw.setdefault("data", {})
            if isinstance(data, dict):
                if data_path is not None:
                    data["path"] = data_path
                else:
                    data.setdefault("path", PLACEHOLDER_DATA_PATH)
                if data_kind is not None:
                    data["kind"] = data_kind
        parsed = parse_config(raw)
        dim = teacher_dimension(parsed)
        if dim is not None:
            check_dimension(parsed, dim)
        return parsed
    except ConfigError as error:
        raise ConfigRejected(error.as_list()) from None


def validate_config_text(config_yaml: str) -> list[dict[str, str]]:
    """[] when valid, else every problem as {path, message}."""
    try:
        resolve_config(config_yaml)
    except ConfigRejected as error:
        return error.errors
    return []


def create_config(user, name: str, body: str, parent: Optional[Config] = None, team=None) -> Config:
    """Save a validated config for ``user`` in ``team`` (default: the user's default team)."""
    parsed = resolve_config(body)
    return Config.objects.create(name=name, body=body, data=parsed.to_dict(), parent=parent, owner=user, team=team)


def update_config(config: Config, *, name: Optional[str] = None, body: Optional[str] = None) -> Config:
    if body is not None:
        config.data = resolve_config(body).to_dict()
        config.body = body
    if name is not None:
        config.name = name
    config.save()
    return config
