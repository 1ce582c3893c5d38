"""Forms of the browser pages. They check shape only; the actions validate content
(the trainer's config schema, the dataset reader) so pages and API give the same answers."""

from __future__ import annotations

from django import forms

from webapp.configs.models import get_configs_for_user
from webapp.datasets.models import Dataset, get_datasets_for_user
from webapp.runs.models import Run, get_runs_for_user
from webapp.teams.models import get_teams_for_user


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=Dataset.Kind.choices,
        help_text="dialogue: question/answer pairs; corpus: one text per row.",
    )
    # The size limit and the content are checked by create_dataset, with line numbers.
    file = forms.FileField(help_text=".jsonl, .csv, .tsv or .txt, UTF-8.")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        teams = get_teams_for_user(user) if user is not None else None
        if teams is not None and teams.count() > 1:  # one team: nothing to choose
            self.fields["team"] = forms.ModelChoiceField(queryset=teams, required=False,
                                                         empty_label="— my personal team —")


class NewRunForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None)
    stored_config = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="— write YAML below —",
        help_text="Fills the editor; edit freely before queueing.",
    )
    config_yaml = forms.CharField(
        label="Config (YAML)",
        widget=forms.Textarea(attrs={"class": "code", "spellcheck": "false", "rows": 24}),
    )
    queue = forms.ChoiceField(choices=[(queue, queue.upper()) for queue in Run.Queue.values], initial=Run.Queue.CPU)
    priority = forms.IntegerField(min_value=0, max_value=9, initial=5, required=False,
                                  help_text="0–9: within the queue a higher priority starts first.")
    # Set when the form was opened from a run's "Fork" button: the new run records it.
    source_run = forms.ModelChoiceField(queryset=Run.objects.none(), required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = get_datasets_for_user(user).select_related("team")
        self.fields["stored_config"].queryset = get_configs_for_user(user)
        self.fields["source_run"].queryset = get_runs_for_user(user)


class RunNotesForm(forms.Form):
    tags = forms.CharField(required=False, max_length=1000, help_text="Comma-separated.")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]


class RerunForm(forms.Form):
    queue = forms.ChoiceField(choices=[(queue, queue.upper()) for queue in Run.Queue.values])
