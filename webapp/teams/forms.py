"""Forms of the team pages. They check shape only; the teams actions decide what is allowed,
so the pages and the API refuse the same things with the same words."""

from __future__ import annotations

from django import forms

from .models import Membership


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="A shared team; you become its owner.")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER,
                             help_text="Owners may change the team's members.")


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
