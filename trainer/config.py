"""The run configuration: one typed schema, validated before anything runs.

A config is YAML (always read with ``yaml.safe_load``). Every problem is collected and
reported at once with its field path and the fix, e.g.::

    cube.stpes: unknown key `cube.stpes`; did you mean `steps`?
    cube.lattice: lattice 8×8×8 = 512 cells cannot hold 768-D vectors exactly: use 8×8×12,
        or set `cube.projection: learned`

Only ``task``, ``seed``, ``cube.lattice``, ``train.epochs``, ``train.batch_size``,
``data.path`` and ``teachers`` are required; everything else has a default.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Strict(BaseModel):
    # Unknown keys are errors (a typo must never be silently ignored) and fields are
    # re-validated on assignment so a `--set` override cannot sneak in a bad value.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CubeConfig(_Strict):
    lattice: tuple[int, int, int] = Field(description="Cells along x, y and z.")
    state_dim: int = Field(16, ge=1, le=4096, description="Channels of each cell's state.")
    hidden_dim: int = Field(64, ge=1, le=16384, description="Hidden width of the shared cell network.")
    cell: Literal["mlp", "gmlp"] = Field("mlp", description="Shared cell network: plain MLP or gated MLP.")
    steps: int = Field(8, ge=1, le=1000, description="Propagation steps.")
    neighbourhood: Literal[6, 26] = Field(6, description="Face neighbours (6) or the full 3×3×3 block (26).")
    boundary: Literal["zero", "periodic"] = Field("zero", description="What lies beyond the lattice edge.")
    projection: Literal["exact", "learned"] = Field(
        "exact",
        description="`exact`: the embedding is reshaped onto the lattice (its dimension must be a "
        "multiple of the cell count); `learned`: a linear map in and out, for any dimension.",
    )
    early_exit_threshold: float = Field(
        0.0, ge=0.0, description="Stop propagating once the mean state change falls under this (0: never)."
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout inside the cell network.")

    @field_validator("lattice")
    @classmethod
    def _positive_lattice(cls, lattice: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(side < 1 for side in lattice):
            raise ValueError(f"every lattice side must be ≥ 1, got {list(lattice)}")
        if math.prod(lattice) > 1_000_000:
            raise ValueError(f"lattice {_fmt_lattice(lattice)} has more than 1,000,000 cells")
        return lattice

    @property
    def cells(self) -> int:
        return math.prod(self.lattice)


class TrainConfig(_Strict):
    epochs: int = Field(ge=1, le=100_000, description="Passes over the training split.")
    batch_size: int = Field(ge=1, le=65_536, description="Samples per optimizer step.")
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay.")
    scheduler: Literal["cosine", "plateau", "constant"] = Field("cosine", description="Learning-rate schedule.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps before the schedule.")
    grad_clip: float = Field(1.0, ge=0, description="Max global gradient norm (0: no clipping).")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="Share of rows held out for validation.")
    eval_every: int = Field(0, ge=0, description="Evaluate every N steps (0: once per epoch).")
    checkpoint_every: int = Field(0, ge=0, description="Checkpoint every N steps (0: once per epoch).")
    early_stopping_patience: int = Field(
        0, ge=0, description="Stop after N evaluations without improvement of the monitored metric (0: never)."
    )
    monitor: str = Field("val/qa_cosine", description="Metric that early stopping and `best` follow (higher is better).")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after this many optimizer steps.")
    max_minutes: Optional[float] = Field(
        None, gt=0, le=525_600,
        description="Time budget: after this many minutes of training (resumes included) the run evaluates, "
        "checkpoints and ends `succeeded`.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the cube trains.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast for the forward pass.")
    compile: bool = Field(False, description="Wrap the cube in torch.compile.")
    log_every: int = Field(1, ge=1, description="Emit a step event every N steps.")


class DataConfig(_Strict):
    path: str = Field(description="Data file: vectors (.safetensors/.npy/.npz) or text (.jsonl/.csv/.txt).")
    kind: Optional[Literal["vectors", "dialogue", "corpus"]] = Field(
        None, description="Inferred from the file when absent."
    )
    max_rows: int = Field(1_000_000, ge=1, description="Refuse files with more rows than this.")
    max_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Refuse files larger than this.")


class TeacherConfig(_Strict):
    name: str = Field(description="`minilm` (bundled), a local folder, or a Hugging Face model name.")
    path: Optional[str] = Field(None, description="Local folder to load from (overrides the name lookup).")
    revision: Optional[str] = Field(None, description="Model revision, part of the cache key.")
    pooling: Literal["mean", "cls", "last"] = Field("mean", description="How token states become one vector.")
    max_length: int = Field(128, ge=1, le=8192, description="Tokens kept per text.")
    normalize: bool = Field(True, description="L2-normalise the sentence embedding.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float32", description="Teacher compute dtype.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the teacher runs.")
    batch_size: int = Field(32, ge=1, description="Texts encoded per teacher forward pass.")
    weight: float = Field(1.0, ge=0, description="This teacher's weight in the distillation loss.")


class LossTerm(_Strict):
    weight: float = Field(0.0, ge=0, description="Weight of the term in the total loss (0: off).")
    warmup_steps: int = Field(0, ge=0, description="Ramp the weight linearly from 0 over N steps.")


class InfoNCETerm(LossTerm):
    temperature: float = Field(0.05, gt=0, description="Softmax temperature over in-batch candidates.")
    symmetric: bool = Field(
        False, description="Also classify each target among all predictions and average both directions (CLIP-style)."
    )


class TripletTerm(LossTerm):
    margin: float = Field(0.2, ge=0, description="Cosine margin between the positive and each negative.")
    negatives: int = Field(4, ge=1, description="Hardest in-batch negatives used per anchor.")


class LossConfig(_Strict):
    cosine: LossTerm = Field(default_factory=lambda: LossTerm(weight=1.0), description="1 − cos(prediction, target).")
    mse: LossTerm = Field(default_factory=LossTerm, description="Mean squared error to the target.")
    infonce: InfoNCETerm = Field(default_factory=InfoNCETerm, description="InfoNCE with in-batch negatives.")
    triplet: TripletTerm = Field(default_factory=TripletTerm, description="Triplet loss with hard-mined negatives.")


class DistillConfig(_Strict):
    regression_weight: float = Field(
        1.0, ge=0, description="Weight of the heads' 1 − cos to their teachers (every space but the primary one)."
    )
    regression_warmup_steps: int = Field(0, ge=0, description="Ramp `regression_weight` linearly from 0 over N steps.")
    regression_mse: float = Field(
        0.0, ge=0, description="Add this × MSE(head prediction, teacher target) to each head's 1 − cos."
    )
    relational_weight: float = Field(
        0.0, ge=0, description="Weight of the KL between teacher and student in-batch similarity matrices."
    )
    relational_warmup_steps: int = Field(0, ge=0, description="Ramp `relational_weight` linearly from 0 over N steps.")
    temperature: float = Field(0.1, gt=0, description="Softmax temperature of the relational term.")
    teacher_weighting: Literal["fixed", "agreement"] = Field(
        "fixed", description="`fixed`: each teacher's `weight`; `agreement`: balanced by validation agreement."
    )
    eval_teacher: Optional[str] = Field(None, description="Teacher whose space metrics use (default: the first).")


class Config(_Strict):
    task: Literal["autoencoder", "dialogue"] = Field(description="Reconstruct the input, or map question → answer.")
    seed: int = Field(description="Seeds weights, split and batch order.")
    cube: CubeConfig
    train: TrainConfig
    data: DataConfig
    teachers: list[TeacherConfig] = Field(description="Teacher encoders; empty when the data are vectors.")
    loss: LossConfig = Field(default_factory=LossConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    name: Optional[str] = Field(None, description="A label for the run.")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class ConfigIssue:
    path: str  # dotted field path, e.g. "cube.lattice"; "" for the whole document
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """Raised with every problem found, so the user fixes them in one pass."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("invalid config:\n" + "\n".join(f"  {issue}" for issue in issues))

    def as_list(self) -> list[dict[str, str]]:
        return [{"path": issue.path, "message": issue.message} for issue in self.issues]


def parse_config(data: Any, overrides: Optional[list[str]] = None, dim: Optional[int] = None) -> Config:
    """Validate a mapping (plus ``key=value`` overrides) into a Config or raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", f"a config is a mapping of keys, got {type(data).__name__}")])
    data = copy.deepcopy(data)
    for override in overrides or []:
        _apply_override(data, override)
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError([_issue_from_pydantic(err) for err in error.errors()]) from None
    if dim is not None:
        check_dimension(config, dim)
    return config


def load_config(path: str | Path, overrides: Optional[list[str]] = None, dim: Optional[int] = None) -> Config:
    return parse_config(read_yaml(Path(path).read_text(encoding="utf-8")), overrides, dim)


def read_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([ConfigIssue("", f"invalid YAML at {where}{problem}")]) from None


def config_json_schema() -> dict[str, Any]:
    return Config.model_json_schema()


def check_dimension(config: Config, dim: int) -> None:
    """An `exact` cube must hold a whole number of embedding channels per cell."""
    cube = config.cube
    if cube.projection == "exact" and dim % cube.cells != 0:
        raise ConfigError([ConfigIssue("cube.lattice", lattice_mismatch_message(cube.lattice, dim))])


def lattice_mismatch_message(lattice: tuple[int, int, int], dim: int) -> str:
    cells = math.prod(lattice)
    options = suggest_lattices(lattice, dim)
    use = f"use {' or '.join(_fmt_lattice(option) for option in options)}, or " if options else ""
    return (
        f"lattice {_fmt_lattice(lattice)} = {cells} cells cannot hold {dim}-D vectors exactly: "
        f"{use}set `cube.projection: learned`"
    )


def suggest_lattices(lattice: tuple[int, int, int], dim: int, limit: int = 2) -> list[tuple[int, int, int]]:
    """Lattices whose cell count equals ``dim``, closest to the one asked for first."""
    x, y, z = lattice
    found: list[tuple[int, int, int]] = []
    # Keep two sides and change the third: the smallest edit to the user's intent.
    for keep, build in (((x, y), lambda n: (x, y, n)), ((x, z), lambda n: (x, n, z)), ((y, z), lambda n: (n, y, z))):
        if dim % (keep[0] * keep[1]) == 0:
            candidate = build(dim // (keep[0] * keep[1]))
            if candidate not in found:
                found.append(candidate)
    return found[:limit]


def _fmt_lattice(lattice: tuple[int, ...]) -> str:
    return "×".join(str(side) for side in lattice)


def _apply_override(data: dict, override: str) -> None:
    """`cube.steps=12` sets data["cube"]["steps"] = 12; the value is parsed as YAML."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError([ConfigIssue("", f"override `{override}` must look like key.path=value")])
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError([ConfigIssue(key, f"cannot set `{key}`: `{part}` is not a mapping")])
    node[parts[-1]] = read_yaml(raw) if raw.strip() else None


def _issue_from_pydantic(error: dict[str, Any]) -> ConfigIssue:
    loc = [str(part) for part in error["loc"]]
    path = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return ConfigIssue(path, _unknown_key_message(loc))
    if error["type"] == "missing":
        return ConfigIssue(path, f"required key `{path}` is missing")
    message = error["msg"]
    if error.get("input") is not None and error["type"] not in ("value_error",):
        message += f" (got {json.dumps(error['input'], default=str)[:80]})"
    return ConfigIssue(path, message)


def _unknown_key_message(loc: list[str]) -> str:
    model: Any = Config
    for part in loc[:-1]:
        if part.isdigit():  # an index into a list keeps the list's item model
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = _model_of(field.annotation) if field else None
    known = list(model.model_fields) if model else []
    message = f"unknown key `{'.'.join(loc)}`"
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean `{close[0]}`?"
    return f"{message}; known keys here: {', '.join(known)}" if known else message


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `list[TeacherConfig]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
