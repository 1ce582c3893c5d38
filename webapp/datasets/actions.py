"""Writes with side effects for datasets: validate with the trainer's reader, then store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import ProtectedError

from trainer.text_data import DatasetError, DatasetIssue, read_text_dataset

from .models import Dataset, safe_suffix

PREVIEW_ROWS = 10


class DatasetRejected(Exception):
    """The upload cannot become a dataset; ``errors`` = [{line, message}] for the user."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__("; ".join(_format(error) for error in errors))


def _format(error: dict) -> str:
    return f"line {error['line']}: {error['message']}" if error.get("line") else error["message"]


class DatasetInUse(Exception):
    """Delete asked of a dataset that runs still use (the API answers 409)."""


def create_dataset(user, name: str, kind: Optional[str], uploaded_file, team=None) -> Dataset:
    """Validate ``uploaded_file`` as a ``kind`` text dataset and store it for ``user`` in
    ``team`` (default: the user's default team).

    The file is read in a temporary directory first; on any problem nothing is stored (no
    file, no row) and DatasetRejected lists every issue with its line number.
    """
    max_bytes = settings.CUBELAB_DATASET_MAX_BYTES
    if kind not in (None, "", *Dataset.Kind.values):
        raise DatasetRejected([{"line": None, "message": f"kind must be one of {', '.join(Dataset.Kind.values)}"}])
    if uploaded_file.size is not None and uploaded_file.size > max_bytes:
        raise DatasetRejected([{"line": None, "message": f"the file is {uploaded_file.size:,} bytes, "
                                f"more than the limit of {max_bytes:,} bytes"}])
    original_name = Path(uploaded_file.name or "upload").name[:255]
    with tempfile.TemporaryDirectory(prefix="cubelab-upload-") as tmp:
        path = Path(tmp) / f"upload{safe_suffix(original_name)}"
        with path.open("wb") as out:
            for chunk in uploaded_file.chunks():
                out.write(chunk)
        try:
            data = read_text_dataset(
                path, kind or None, max_rows=settings.CUBELAB_DATASET_MAX_ROWS, max_bytes=max_bytes,
                max_line_bytes=settings.CUBELAB_DATASET_MAX_LINE_BYTES,
            )
        except DatasetError as error:
            raise DatasetRejected(error.as_list()) from None
        if data.kind not in Dataset.Kind.values:
            raise DatasetRejected([{"line": None, "message": f"`{data.kind}` files are not supported here; "
                                    "upload dialogue or corpus text"}])
        dataset = Dataset(
            name=name or original_name, kind=data.kind, rows=data.rows, sha256=data.sha256,
            size_bytes=path.stat().st_size, preview=data.preview(PREVIEW_ROWS),
            warnings=[_issue_dict(issue) for issue in data.warnings], owner=user, original_name=original_name,
            team=team,
        )
        with path.open("rb") as handle:
            dataset.file.save(original_name, File(handle), save=False)
    try:
        with transaction.atomic():
            dataset.save()
    except BaseException:
        dataset.file.delete(save=False)  # no orphan file when the row could not be written
        raise
    return dataset


def _issue_dict(issue: DatasetIssue) -> dict:
    return {"line": issue.line, "message": issue.message}


def delete_dataset(dataset: Dataset) -> None:
    """Delete the dataset and, after commit, its file; DatasetInUse while runs use it."""
    used = dataset.runs.count()
    if used:
        raise DatasetInUse(f"{used} run{'s' if used != 1 else ''} use{'s' if used == 1 else ''} dataset "
                           f"#{dataset.pk}; delete {'them' if used != 1 else 'it'} first")
    storage, name = dataset.file.storage, dataset.file.name
    try:
        with transaction.atomic():
            dataset.delete()
            transaction.on_commit(lambda: storage.delete(name))
    except ProtectedError:  # a run was queued on it in the meantime
        raise DatasetInUse(f"runs use dataset #{dataset.pk}; delete them first") from None
