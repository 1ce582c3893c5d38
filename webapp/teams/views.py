"""Team pages: your teams and a form to create one; a team's members, which its owners add,
re-role and remove. Reads go through ``get_team_for_user`` (404 for teams one is not in),
writes through the teams actions (403 for members who are not owners)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .actions import (MembershipRejected, NotAMember, add_member, change_role, create_team, is_team_admin,
                      remove_member, require_team_admin)
from .forms import MemberAddForm, MemberRoleForm, TeamCreateForm
from .models import Membership, Team, get_team_for_user, get_teams_for_user


@login_required
def team_list(request):
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = create_team(request.user, form.cleaned_data["name"])
        except MembershipRejected as error:
            form.add_error(error.field, error.message)
        else:
            messages.success(request, f"Team “{team.name}” created; you are its owner.")
            return redirect("teams:detail", team_id=team.pk)
    teams = get_teams_for_user(request.user).prefetch_related(_members())
    return render(request, "teams/list.html", {"teams": teams, "form": form},
                  status=400 if form.errors else 200)


@login_required
def team_detail(request, team_id):
    """GET shows the members; POST (owners) adds one."""
    team = _get_team_or_404(request.user, team_id)
    form = MemberAddForm(request.POST or None)
    if request.method == "POST":
        require_team_admin(request.user, team)
        if form.is_valid():
            try:
                membership = add_member(request.user, team, **form.cleaned_data)
            except MembershipRejected as error:
                form.add_error(error.field, error.message)
            else:
                messages.success(request, f"{membership.user.get_username()} joined “{team.name}” "
                                          f"as {membership.role}.")
                return redirect("teams:detail", team_id=team.pk)
    return _render_detail(request, team, form, status=400 if form.errors else 200)


@login_required
@require_POST
def member_role(request, team_id, username):
    team = _get_team_or_404(request.user, team_id)
    require_team_admin(request.user, team)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, team, role_errors={username: form.errors["role"][0]}, status=400)
    try:
        membership = change_role(request.user, team, username, form.cleaned_data["role"])
    except NotAMember:
        raise Http404("No such member") from None
    except MembershipRejected as error:
        return _render_detail(request, team, role_errors={username: error.message}, status=400)
    messages.success(request, f"{username} is now {membership.role} of “{team.name}”.")
    return redirect("teams:detail", team_id=team.pk)


@login_required
def member_remove(request, team_id, username):
    """GET asks for confirmation; POST removes (refused for the last owner)."""
    team = _get_team_or_404(request.user, team_id)
    require_team_admin(request.user, team)
    membership = team.memberships.select_related("user").filter(user__username=username).first()
    if membership is None:
        raise Http404("No such member")
    error = None
    if request.method == "POST":
        try:
            remove_member(request.user, team, username)
        except MembershipRejected as problem:
            error = problem.message
        else:
            messages.success(request, f"{username} was removed from “{team.name}”.")
            if membership.user_id == request.user.pk:  # one's own way out: the team is no longer visible
                return redirect("teams:list")
            return redirect("teams:detail", team_id=team.pk)
    context = {"team": team, "membership": membership, "error": error}
    return render(request, "teams/confirm_remove.html", context, status=400 if error else 200)


def _render_detail(request, team: Team, form: MemberAddForm | None = None, role_errors: dict | None = None,
                   status: int = 200):
    is_admin = is_team_admin(request.user, team)
    context = {
        "team": team,
        "memberships": team.memberships.select_related("user").order_by("created_at", "id"),
        "is_admin": is_admin,
        "can_add": is_admin and not team.is_personal,
        "form": form or MemberAddForm(),
        "roles": Membership.Role.choices,
        "role_errors": role_errors or {},
    }
    return render(request, "teams/detail.html", context, status=status)


def _members() -> Prefetch:
    return Prefetch("memberships", queryset=Membership.objects.select_related("user").order_by("created_at", "id"))


def _get_team_or_404(user, team_id) -> Team:
    try:
        return get_team_for_user(user, team_id)
    except Team.DoesNotExist:
        raise Http404("No such team") from None
