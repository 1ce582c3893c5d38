from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from webapp.teams.models import get_teams_for_user

from .tokens import describe, get_token, issue_token, revoke_token


@login_required
def tokens(request):
    """The user's API token: create or rotate it (the key is shown once), or revoke it."""
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            revoke_token(request.user)
        elif request.POST.get("action") == "issue":
            new_key = issue_token(request.user).key
    context = {"token": describe(get_token(request.user)), "new_key": new_key,
               "teams": get_teams_for_user(request.user)}
    return render(request, "accounts/tokens.html", context)
