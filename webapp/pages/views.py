"""Browser pages: short function views, one template and one script each.

Pages read through the apps' access helpers (``get_run_for_user`` and friends, 404 for
anything not yours) and write only through their actions, so the browser and the REST API
obey the same rules.
"""

from __future__ import annotations

from datetime import datetime, timezone

import yaml
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render

from webapp.configs.actions import ConfigRejected
from webapp.configs.models import get_configs_for_user
from webapp.datasets.actions import DatasetRejected, create_dataset
from webapp.datasets.models import Dataset, get_dataset_for_user, get_datasets_for_user
from webapp.pages.forms import DatasetUploadForm, NewRunForm
from webapp.runs.actions import queue_run
from webapp.runs.models import Run, get_run_for_user, get_runs_for_user

RUNS_PER_PAGE = 50
LOG_TAIL_LINES = 200
VAL_METRICS = ["val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr"]


@login_required
def runs_list(request):
    runs = get_runs_for_user(request.user).select_related("dataset")[:RUNS_PER_PAGE]
    return render(request, "pages/runs_list.html", {"runs": runs})


@login_required
def new_run(request):
    form = NewRunForm(request.POST or None, user=request.user, initial=_new_run_initial(request))
    config_issues = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = queue_run(
                request.user, name=data["name"], dataset=data["dataset"],
                config_yaml=data["config_yaml"], queue=data["queue"], source_config=data["stored_config"],
            )
        except ConfigRejected as error:
            config_issues = error.errors  # shown with their field paths; nothing was queued
        else:
            return redirect("pages:run_detail", run_id=run.pk)
    stored = {str(config.pk): config.body for config in get_configs_for_user(request.user)}
    context = {"form": form, "config_issues": config_issues, "stored_configs": stored}
    return render(request, "pages/new_run.html", context, status=400 if config_issues else 200)


def _new_run_initial(request) -> dict:
    """Start from the newest stored config, or the newest run's YAML, so the form is never blank."""
    initial = {"dataset": request.GET.get("dataset")}
    config = get_configs_for_user(request.user).first()
    if config is not None:
        return initial | {"stored_config": config.pk, "config_yaml": config.body}
    run = get_runs_for_user(request.user).exclude(config_yaml="").first()
    return initial | ({"config_yaml": run.config_yaml} if run else {})


@login_required
def run_detail(request, run_id):
    run = _get_run_or_404(request.user, run_id)
    context = {
        "run": run,
        "checkpoints": run.checkpoints.all(),
        "log_tail": _log_tail(run),
        "resolved_config_yaml": yaml.safe_dump(run.config, sort_keys=False, allow_unicode=True),
        "val_metrics": VAL_METRICS,
    }
    return render(request, "pages/run_detail.html", context)


def _log_tail(run: Run) -> list[dict]:
    entries = list(run.log_entries.order_by("-id")[:LOG_TAIL_LINES])[::-1]
    return [{"when": datetime.fromtimestamp(entry.time, timezone.utc), "level": entry.level,
             "message": entry.message} for entry in entries]


def _get_run_or_404(user, run_id) -> Run:
    try:
        return get_run_for_user(user, run_id)
    except Run.DoesNotExist:
        raise Http404("No such run") from None


@login_required
def datasets_list(request):
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    file_errors = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = create_dataset(request.user, data["name"], data["kind"], data["file"])
        except DatasetRejected as error:
            file_errors = error.errors  # [{line, message}]: nothing was stored
        else:
            return redirect("pages:dataset_detail", dataset_id=dataset.pk)
    context = {
        "form": form, "file_errors": file_errors, "datasets": get_datasets_for_user(request.user),
        "max_bytes": settings.CUBELAB_DATASET_MAX_BYTES,
    }
    status = 400 if file_errors or form.errors else 200
    return render(request, "pages/datasets_list.html", context, status=status)


@login_required
def dataset_detail(request, dataset_id):
    try:
        dataset = get_dataset_for_user(request.user, dataset_id)
    except Dataset.DoesNotExist:
        raise Http404("No such dataset") from None
    runs = get_runs_for_user(request.user).filter(dataset=dataset)[:RUNS_PER_PAGE]
    return render(request, "pages/dataset_detail.html", {"dataset": dataset, "runs": runs})
