"""Browser pages: short function views, one template and one script each.

Pages read through the apps' access helpers (``get_run_for_user`` and friends, 404 for
anything not yours) and write only through their actions, so the browser and the REST API
obey the same rules.
"""

from __future__ import annotations

from datetime import datetime, timezone

import yaml
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.configs.actions import ConfigRejected
from webapp.configs.models import get_configs_for_user
from webapp.datasets.actions import DatasetInUse, DatasetRejected, create_dataset, delete_dataset
from webapp.datasets.models import Dataset, get_dataset_for_user, get_datasets_for_user
from webapp.pages.forms import DatasetUploadForm, NewRunForm, RerunForm, RunNotesForm
from webapp.runs.actions import RunNotFinished, delete_run, queue_run, rerun_run, set_baseline
from webapp.runs.models import Run, get_run_for_user, get_runs_for_user

RUNS_PER_PAGE = 50
LOG_TAIL_LINES = 200
VAL_METRICS = ["val/qa_cosine", "val/recall@1", "val/recall@5", "val/mrr"]


@login_required
def runs_list(request):
    runs = get_runs_for_user(request.user).select_related("dataset", "team")[:RUNS_PER_PAGE]
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
                priority=5 if data["priority"] is None else data["priority"],
                source_run=data["source_run"],
            )
        except ConfigRejected as error:
            config_issues = error.errors  # shown with their field paths; nothing was queued
        else:
            return redirect("pages:run_detail", run_id=run.pk)
    stored = {str(config.pk): config.body for config in get_configs_for_user(request.user)}
    context = {"form": form, "config_issues": config_issues, "stored_configs": stored,
               "source_run": form["source_run"].value() and _source_run(request.user, form["source_run"].value())}
    return render(request, "pages/new_run.html", context, status=400 if config_issues else 200)


def _source_run(user, run_id):
    try:
        return get_run_for_user(user, run_id)
    except (Run.DoesNotExist, ValueError):
        return None


def _new_run_initial(request) -> dict:
    """A fork (`?from_run=<id>`) starts from that run's name, YAML, dataset and queue; otherwise
    the newest stored config, or the newest run's YAML, so the form is never blank."""
    if request.GET.get("from_run"):
        run = _get_run_or_404(request.user, request.GET["from_run"])
        return {"name": f"{run.name} (fork)"[:200], "dataset": run.dataset_id, "queue": run.queue,
                "config_yaml": _user_yaml(run), "stored_config": run.source_config_id, "source_run": run.pk}
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
        "notes_form": RunNotesForm(initial={"tags": ", ".join(run.tag_names), "notes": run.notes}),
        "rerun_form": RerunForm(initial={"queue": run.queue}),
    }
    return render(request, "pages/run_detail.html", context)


@login_required
@require_POST
def run_notes(request, run_id):
    run = _get_run_or_404(request.user, run_id)
    form = RunNotesForm(request.POST)
    if form.is_valid():
        run.notes = form.cleaned_data["notes"]
        run.save(update_fields=["notes"])
        run.set_tags(form.cleaned_data["tags"])
        messages.success(request, "Tags and notes saved.")
    return redirect("pages:run_detail", run_id=run.pk)


@login_required
@require_POST
def run_baseline(request, run_id):
    run = _get_run_or_404(request.user, run_id)
    on = request.POST.get("on") == "1"
    set_baseline(run, on)
    messages.success(request, f"#{run.pk} is now the baseline of team {run.team}." if on else "Baseline cleared.")
    return redirect("pages:run_detail", run_id=run.pk)


@login_required
@require_POST
def run_rerun(request, run_id):
    run = _get_run_or_404(request.user, run_id)
    form = RerunForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a queue to re-run on.")
        return redirect("pages:run_detail", run_id=run.pk)
    try:
        new = rerun_run(request.user, run, form.cleaned_data["queue"])
    except ConfigRejected as error:
        messages.error(request, f"Cannot re-run: {error}")
        return redirect("pages:run_detail", run_id=run.pk)
    return redirect("pages:run_detail", run_id=new.pk)


@login_required
def run_delete(request, run_id):
    """GET asks for confirmation; POST deletes (409 while the run is queued or running)."""
    run = _get_run_or_404(request.user, run_id)
    error = None
    if request.method == "POST":
        try:
            delete_run(run)
        except RunNotFinished as problem:
            error = str(problem)
        else:
            messages.success(request, f"Run #{run_id} and its files were deleted.")
            return redirect("pages:runs")
    context = {"object": run, "kind": "run", "error": error, "checkpoints": run.checkpoints.count()}
    return render(request, "pages/confirm_delete.html", context, status=409 if error else 200)


def _user_yaml(run: Run) -> str:
    """The run's YAML without `data` (the form's dataset choice fills it again)."""
    config = {key: value for key, value in run.config.items() if key != "data"}
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True) if config else run.config_yaml


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
    form = DatasetUploadForm(request.POST or None, request.FILES or None, user=request.user)
    file_errors = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            dataset = create_dataset(request.user, data["name"], data["kind"], data["file"], team=data.get("team"))
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


@login_required
def dataset_delete(request, dataset_id):
    """GET asks for confirmation; POST deletes (409 while runs use the dataset)."""
    try:
        dataset = get_dataset_for_user(request.user, dataset_id)
    except Dataset.DoesNotExist:
        raise Http404("No such dataset") from None
    error = None
    if request.method == "POST":
        try:
            delete_dataset(dataset)
        except DatasetInUse as problem:
            error = str(problem)
        else:
            messages.success(request, f"Dataset {dataset.name} and its file were deleted.")
            return redirect("pages:datasets")
    context = {"object": dataset, "kind": "dataset", "error": error, "runs": dataset.runs.count()}
    return render(request, "pages/confirm_delete.html", context, status=409 if error else 200)
