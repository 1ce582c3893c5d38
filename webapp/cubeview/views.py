"""The cube view and projector pages: one template and one script each; the scripts read
everything through the cubeview API (which queues the computation on a worker)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from webapp.runs.models import Run, get_run_for_user


def _run_or_404(user, run_id: int) -> Run:
    try:
        return get_run_for_user(user, run_id)
    except Run.DoesNotExist:
        raise Http404("No such run") from None


@login_required
def cube_page(request, run_id: int):
    run = _run_or_404(request.user, run_id)
    cube = run.config.get("cube") or {}
    return render(request, "cubeview/cube.html", {"run": run, "state_dim": cube.get("state_dim", 64),
                                                   "lattice": cube.get("lattice"), "steps": cube.get("steps")})


@login_required
def projector_page(request, run_id: int):
    return render(request, "cubeview/projector.html", {"run": _run_or_404(request.user, run_id)})
