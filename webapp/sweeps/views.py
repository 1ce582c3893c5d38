"""Browser pages for sweeps: list, new (form with inline validation), detail (live ranking,
history and importance plots; the page polls the API)."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render

from webapp.configs.models import get_configs_for_user
from webapp.datasets.models import Dataset, get_datasets_for_user
from webapp.runs.models import Run, get_runs_for_user

from .actions import create_sweep
from .models import Sweep, get_sweep_for_user, get_sweeps_for_user
from .optimiser import SpaceError

DEFAULT_SPACE = ("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n"
                 "cube.steps: {type: int, low: 2, high: 8}\n")


class NewSweepForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None)
    queue = forms.ChoiceField(choices=[(queue, queue.upper()) for queue in Run.Queue.values], initial=Run.Queue.CPU)
    base_config_yaml = forms.CharField(label="Base config (YAML)", widget=forms.Textarea(
        attrs={"class": "code", "spellcheck": "false", "rows": 16}))
    search_space_yaml = forms.CharField(label="Search space (YAML)", initial=DEFAULT_SPACE, widget=forms.Textarea(
        attrs={"class": "code", "spellcheck": "false", "rows": 8}),
        help_text="config.key: {type: float|int|categorical, low, high, log, step, choices, values}; a choice may "
                  "be a list, e.g. cube.lattice: {type: categorical, choices: [[8, 8, 6], [4, 4, 24]]}")
    method = forms.ChoiceField(choices=Sweep.Method.choices, initial=Sweep.Method.TPE)
    metric = forms.CharField(max_length=100, initial="val/qa_cosine")
    direction = forms.ChoiceField(choices=Sweep.Direction.choices, initial=Sweep.Direction.MAXIMIZE)
    budget = forms.IntegerField(min_value=1, max_value=10_000, initial=10)
    parallelism = forms.IntegerField(min_value=1, max_value=64, initial=2)
    pruning = forms.BooleanField(required=False, initial=True, label="Median pruning")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = get_datasets_for_user(user).select_related("team")


@login_required
def sweep_list(request):
    sweeps = get_sweeps_for_user(request.user).select_related("dataset", "team")[:100]
    return render(request, "sweeps/list.html", {"sweeps": sweeps})


@login_required
def sweep_new(request):
    initial = {}
    config = get_configs_for_user(request.user).first()
    run = None if config else get_runs_for_user(request.user).exclude(config_yaml="").first()
    if config is not None or run is not None:
        initial["base_config_yaml"] = config.body if config else run.config_yaml
    form = NewSweepForm(request.POST or None, user=request.user, initial=initial)
    issues = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sweep = create_sweep(request.user, name=data["name"], dataset=data["dataset"],
                                 base_config_yaml=data["base_config_yaml"], search_space=data["search_space_yaml"],
                                 method=data["method"], metric=data["metric"], direction=data["direction"],
                                 budget=data["budget"], parallelism=data["parallelism"], queue=data["queue"],
                                 pruning=data["pruning"])
        except SpaceError as error:
            issues = error.errors
        else:
            return redirect("sweeps:detail", sweep_id=sweep.pk)
    return render(request, "sweeps/new.html", {"form": form, "issues": issues}, status=400 if issues else 200)


@login_required
def sweep_detail(request, sweep_id):
    try:
        sweep = get_sweep_for_user(request.user, sweep_id)
    except Sweep.DoesNotExist:
        raise Http404("no such sweep") from None
    return render(request, "sweeps/detail.html", {"sweep": sweep})
